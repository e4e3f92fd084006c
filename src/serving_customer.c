/*
 * serving_customer.c
 *		upsell.recommend_for_customer(customer_id, k, tenant_id, at,
 *		half_life, due_within): a customer's k best products, for the
 *		thank-you page and the emails (email_sequence asks it for 4 x steps);
 *		and what the thank-you page (post_purchase_offers) offers of what
 *		the customer owns (serving_owned_offers).
 *
 * Why C: as a query (until 1.11) it took 3.8 ms at the median and 9.5 ms at
 * the 90th percentile of 300 customers at 10M order lines, in a warm
 * session, and 45 ms for a customer of 70 products.  Most of it was a
 * lookup in product_model of every candidate, before the k were cut: the
 * complements of up to 100 purchases (20 each) and k * 3 + (what the
 * customer owns) bestsellers of every category they buy from, and of the
 * shop.  Here the tiers are taken in the answer's order, and within the
 * first its candidates by score, each checked (in stock, not blocked, not
 * excluded) only until k are kept; a later tier is read only when those
 * before it leave slots.
 *
 * The answer is 1.11's:
 *	tier 1	the complements of the 100 most recent purchases (each purchase's
 *			list of pair_list_model, its scores weighted by
 *			0.5 ^ (age / half_life), combined by noisy-OR), and the owned
 *			consumables due by at + due_within, not overdue by more than
 *			their interval (restocks);
 *	tier 2	the bestsellers of the categories of those purchases, the first
 *			k * 3 + min(owned, 100) of each in stock and not excluded;
 *	tier 3	the shop's, the first k * 3 + owned;
 * a product once, in its first tier at its best score; in stock, not
 * excluded next to what the customer owns, never blocked (a durable owned, a
 * consumable owned and not due); by tier, score descending, product id.
 * Two things differ in the last bits: the noisy-OR's sum of logs is summed
 * in doubles in one order (the purchases by recency, each list in its
 * order), as the cart stage sums it, where the query summed numerics to be
 * free of the order its plan read them in; and a purchase's age is one
 * double division, not a numeric one rounded to a double.  A complement and
 * a restock of the same product at the same score, which the query's sort
 * left to chance, give the complement.  sql/70_recommend_customer compares
 * the two over every customer of the groceries data.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "intervals.h"
#include "serving.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_recommend_for_customer);

#define RECENT_EVIDENCE		100 /* the purchases whose complements count: older
								 * ones weigh little after decay, and a
								 * wholesale buyer's thousands would cost a lot */
#define MOST_LIKELY			0.999999	/* least(w x score, this): no pair is a
										 * certainty */

typedef enum Tier
{
	TIER_PERSONAL = 1,
	TIER_CATEGORY = 2,
	TIER_SHOP = 3
} Tier;

/* A product the customer's history proposes (tier 1). */
typedef struct Personal
{
	int64		id;
	int			slot;			/* its place as first named: the contributions' */
	bool		complement;		/* some purchase's list names it */
	double		log_miss;		/* sum of ln(1 - least(w x score, MOST_LIKELY)) */
	const OwnedProduct *restock;	/* owned and due: the product */
	/* the row it is offered as: the better of the two */
	bool		as_restock;
	bool		score_null;		/* a restock of unknown confidence (sorts first) */
	double		score;
} Personal;

/* One purchase's pair naming a Personal: what "because" lists. */
typedef struct Contribution
{
	int			personal;		/* the Personal's slot */
	int64		because;
	bool		weight_null;
	double		weight;			/* w x score */
} Contribution;

/* A bestseller of tier 2 or 3. */
typedef struct Bestseller
{
	int64		id;
	double		score;			/* orders / the tenant's orders */
} Bestseller;

typedef struct Chosen
{
	int64		id;
	Tier		tier;
	const Personal *personal;	/* tier 1 */
	double		score;			/* tiers 2 and 3 */
} Chosen;

/* What the request knows, for the checks of its candidates. */
typedef struct Request
{
	int64		tenant_id;
	const TenantRules *rules;
	bool		has_rules;
	CustomerOwned owned;
	int			nblocked;
	const OwnedProduct **recent;	/* the most recent purchases, first to last */
	int			nrecent;
	Chosen	   *chosen;
	int			nchosen;
	int			chosen_cap;
	int			k;
} Request;

/* DESC NULLS FIRST, as ORDER BY ... DESC sorts: -1 when a comes first. */
static int
cmp_desc(bool a_null, double a, bool b_null, double b)
{
	if (a_null || b_null)
		return a_null == b_null ? 0 : a_null ? -1 : 1;
	return a > b ? -1 : a < b ? 1 : 0;
}

static int
cmp_int64(int64 a, int64 b)
{
	return a < b ? -1 : a > b ? 1 : 0;
}

static int
cmp_personal(const void *a, const void *b)
{
	const Personal *x = a;
	const Personal *y = b;
	int			c = cmp_desc(x->score_null, x->score, y->score_null, y->score);

	return c != 0 ? c : cmp_int64(x->id, y->id);
}

static int
cmp_contribution(const void *a, const void *b)
{
	const Contribution *x = a;
	const Contribution *y = b;
	int			c = cmp_desc(x->weight_null, x->weight, y->weight_null, y->weight);

	return c != 0 ? c : cmp_int64(x->because, y->because);
}

static int
cmp_bestseller(const void *a, const void *b)
{
	const Bestseller *x = a;
	const Bestseller *y = b;
	int			c = cmp_desc(false, x->score, false, y->score);

	return c != 0 ? c : cmp_int64(x->id, y->id);
}

static bool
is_blocked(const Request *q, int64 id)
{
	int			i = serving_sorted_index(q->owned.ids, q->owned.n, id);

	return i >= 0 && !q->owned.products[i].blocked_null && q->owned.products[i].blocked;
}

static bool
is_excluded(const Request *q, int64 id)
{
	return q->has_rules && serving_excluded(q->rules, id, q->owned.ids, q->owned.n);
}

static void
choose(Request *q, int64 id, Tier tier, const Personal *personal, double score)
{
	if (q->nchosen == q->chosen_cap)
	{
		q->chosen_cap *= 2;
		q->chosen = repalloc(q->chosen, sizeof(Chosen) * q->chosen_cap);
	}
	q->chosen[q->nchosen].id = id;
	q->chosen[q->nchosen].tier = tier;
	q->chosen[q->nchosen].personal = personal;
	q->chosen[q->nchosen++].score = score;
}

static bool
is_chosen(const Request *q, int64 id)
{
	int			i;

	for (i = 0; i < q->nchosen; i++)
		if (q->chosen[i].id == id)
			return true;
	return false;
}

/* A purchase's age in days at `at` (its weight's), from a double division. */
static double
age_days(TimestampTz at, TimestampTz then)
{
	return (double) (at - then) / (double) USECS_PER_DAY;
}

/* The Personal of id, added (zeroed, at its id's number) if new. */
static int
personal_slot(IdNumbers *numbers, Personal *p, int64 id)
{
	bool		added;
	int			k = serving_id_number(numbers, id, &added);

	if (added)
	{
		memset(&p[k], 0, sizeof(Personal));
		p[k].slot = k;
		p[k].id = id;
	}
	return k;
}

/* Owned, not blocked, with a due date: a restock unless lapsed. */
static bool
may_restock(const OwnedProduct *o)
{
	return !o->blocked_null && !o->blocked && !o->due_null && !o->interval_null;
}

/*
 * Tier 1: the complements of the recent purchases and the restocks, in a
 * Personal each, with the purchases' pairs naming them.
 */
static Personal *
personal_candidates(Request *q, TimestampTz at, double half_days, int *npersonal,
					Contribution **contributions, int *ncontributions)
{
	const CustomerOwned *owned = &q->owned;
	int			n = owned->n;
	const OwnedProduct **recent = q->recent;
	int			nrecent = q->nrecent;
	int64	   *recent_ids = palloc(sizeof(int64) * Max(nrecent, 1));
	PairList   *lists = palloc0(sizeof(PairList) * Max(nrecent, 1));
	int			total;
	int			nrestocks = 0;
	IdNumbers	numbers;
	Personal   *p;
	Contribution *c;
	int			nc = 0;
	Interval	one_day = {0, 1, 0};
	int			i,
				j;

	/* each recent purchase's pair list */
	for (i = 0; i < nrecent; i++)
		recent_ids[i] = recent[i]->product_id;
	total = (int) serving_pair_lists(q->tenant_id, recent_ids, nrecent, lists);

	/* the candidates: as many as named, and the restocks */
	for (i = 0; i < n; i++)
		if (may_restock(&owned->products[i]))
			nrestocks++;
	serving_id_numbers_init(&numbers, total + nrestocks);
	p = palloc(sizeof(Personal) * Max(total + nrestocks, 1));
	c = palloc(sizeof(Contribution) * Max(total, 1));

	/* complements: summed in one order, the purchases by recency */
	for (i = 0; i < nrecent; i++)
	{
		const OwnedProduct *o = recent[i];
		bool		w_null = o->last_null;
		double		w = w_null ? 0 : iv_decay(age_days(at, o->last_at), half_days);

		CHECK_FOR_INTERRUPTS();
		for (j = 0; j < lists[i].n; j++)
		{
			int			slot;
			bool		x_null;
			double		x;

			if (lists[i].others_null[j])
				continue;
			x_null = w_null || lists[i].scores_null[j];
			x = x_null ? 0 : w * DatumGetFloat8(lists[i].scores[j]);
			slot = personal_slot(&numbers, p, DatumGetInt64(lists[i].others[j]));
			p[slot].complement = true;
			/* (LEAST skips a NULL, and takes a NaN for the greater) */
			p[slot].log_miss += log(1.0 - (x_null || isnan(x) || x > MOST_LIKELY ? MOST_LIKELY : x));
			c[nc].personal = slot;
			c[nc].because = o->product_id;
			c[nc].weight_null = x_null;
			c[nc].weight = x;
			nc++;
		}
	}
	for (i = 0; i < numbers.n; i++)
		p[i].score = 1 - exp(p[i].log_miss);

	/* restocks: owned, not blocked, due but not overdue by more than the interval */
	for (i = 0; i < n; i++)
	{
		const OwnedProduct *o = &owned->products[i];
		Datum		span;
		TimestampTz lapsed;
		int			slot;

		if (!may_restock(o))
			continue;
		span = DirectFunctionCall2(interval_mul, IntervalPGetDatum(&one_day), Float8GetDatum(o->interval_days));
		lapsed = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval, TimestampTzGetDatum(at), span));
		if (o->next_due < lapsed)
			continue;
		slot = personal_slot(&numbers, p, o->product_id);
		p[slot].restock = o;
		/* the better row of the product: a complement's at a tie */
		if (!p[slot].complement ||
			cmp_desc(o->confidence_null, o->confidence, false, p[slot].score) < 0)
		{
			p[slot].as_restock = true;
			p[slot].score_null = o->confidence_null;
			p[slot].score = o->confidence;
		}
	}
	*npersonal = numbers.n;
	*contributions = c;
	*ncontributions = nc;
	return p;
}

/* Keeps tier 1's best candidates that may be offered, up to k. */
static void
choose_personal(Request *q, Personal *p, int np)
{
	/* (twice the slots, as many as there are at the most: k is the caller's) */
	int			batch = (int) Max(Min(2 * (int64) q->k, (int64) np), 16);
	int64	   *ids = palloc(sizeof(int64) * batch);
	int			next = 0;

	qsort(p, np, sizeof(Personal), cmp_personal);
	while (next < np && q->nchosen < q->k)
	{
		int			m = Min(batch, np - next);
		int			i;

		/* their facts in one read (those not cached) */
		for (i = 0; i < m; i++)
			ids[i] = p[next + i].id;
		serving_cache_facts(q->tenant_id, ids, m);
		for (i = 0; i < m && q->nchosen < q->k; i++)
		{
			int64		id = ids[i];

			if (serving_cached_facts(q->tenant_id, id)->in_stock && !is_blocked(q, id) && !is_excluded(q, id))
				choose(q, id, TIER_PERSONAL, &p[next + i], 0);
		}
		next += m;
	}
}

/*
 * Appends to *list the first `cut` bestsellers in stock and not excluded, of
 * a category or of the shop (category NULL), or fewer: only as many as the
 * slots left could use (each blocked or chosen one may take a place).
 */
static void
read_bestsellers(Request *q, const char *category, int64 cut, double orders,
				 Bestseller **list, int *n, int *cap)
{
	int64		usable = Min(cut, (int64) q->k + q->nblocked);
	int64		limit = usable + (q->has_rules ? q->rules->nexcluded + q->rules->npairs : 0);
	int64		kept = 0;
	Datum		args[3];
	uint64		rows,
				row;

	args[0] = Int64GetDatum(q->tenant_id);
	if (category != NULL)
	{
		args[1] = CStringGetTextDatum(category);
		args[2] = Int64GetDatum(limit);
		rows = serving_run(serving.category_bestsellers, args, NULL);
	}
	else
	{
		args[1] = Int64GetDatum(limit);
		rows = serving_run(serving.bestsellers, args, NULL);
	}
	for (row = 0; row < rows && kept < usable; row++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(serving_col((int) row, 1, &isnull));
		int64		product_orders = DatumGetInt64(serving_col((int) row, 2, &isnull));

		if (is_excluded(q, id))
			continue;
		if (*n == *cap)
		{
			*cap *= 2;
			*list = repalloc(*list, sizeof(Bestseller) * *cap);
		}
		(*list)[*n].id = id;
		(*list)[(*n)++].score = (double) product_orders / orders;
		kept++;
	}
}

/* Keeps the best of the bestsellers that may be offered, up to k. */
static void
choose_bestsellers(Request *q, Tier tier, Bestseller *list, int n)
{
	int			i;

	qsort(list, n, sizeof(Bestseller), cmp_bestseller);
	for (i = 0; i < n && q->nchosen < q->k; i++)
		if (!is_blocked(q, list[i].id) && !is_chosen(q, list[i].id))
			choose(q, list[i].id, tier, NULL, list[i].score);
}

/* The tenant's order count, at least 1: the bestsellers' score is a share of it. */
static double
tenant_orders(int64 tenant_id)
{
	Datum		args[1] = {Int64GetDatum(tenant_id)};
	bool		isnull;
	Datum		d;

	if (serving_run(serving.customer_orders, args, NULL) != 1)
		return 1;
	d = serving_col(0, 1, &isnull);
	return isnull ? 1 : DatumGetFloat8(d);
}

/* Tiers 2 and 3, while slots are left. */
static void
choose_popular(Request *q)
{
	int			cap = 64;
	Bestseller *list = palloc(sizeof(Bestseller) * cap);
	int			n = 0;
	double		orders = tenant_orders(q->tenant_id);
	const char **categories = palloc(sizeof(char *) * Max(q->nrecent, 1));
	int			ncategories = 0;
	int			i,
				j;

	/* the categories of the recent purchases */
	for (i = 0; i < q->nrecent; i++)
	{
		const char *category = q->recent[i]->category;

		if (category == NULL)
			continue;
		for (j = 0; j < ncategories && strcmp(categories[j], category) != 0; j++)
			;
		if (j == ncategories)
			categories[ncategories++] = category;
	}
	for (i = 0; i < ncategories; i++)
		read_bestsellers(q, categories[i], 3 * (int64) q->k + Min(q->owned.n, RECENT_EVIDENCE), orders,
						 &list, &n, &cap);
	choose_bestsellers(q, TIER_CATEGORY, list, n);
	if (q->nchosen == q->k)
		return;
	n = 0;
	read_bestsellers(q, NULL, 3 * (int64) q->k + q->owned.n, orders, &list, &n, &cap);
	choose_bestsellers(q, TIER_SHOP, list, n);
}

/* "because": the purchases naming a complement, by weight, then id. */
static int64 *
because_of(const Contribution *c, int nc, int personal, int *n)
{
	Contribution *mine = palloc(sizeof(Contribution) * Max(nc, 1));
	int64	   *ids;
	int			m = 0,
				i;

	for (i = 0; i < nc; i++)
		if (c[i].personal == personal)
			mine[m++] = c[i];
	qsort(mine, m, sizeof(Contribution), cmp_contribution);
	ids = palloc(sizeof(int64) * Max(m, 1));
	for (i = 0; i < m; i++)
		ids[i] = mine[i].because;
	*n = m;
	return ids;
}

/* "due for a restock: bought every 30.0 days, last on 2024-04-01" */
static char *
restock_reason(const OwnedProduct *o, const char *zone)
{
	return psprintf("due for a restock: bought every %s days, last on %s",
					serving_rounded_text(o->interval_days, 1), serving_shop_day(zone, o->last_at));
}

/*
 * A customer's k best products, as recommend_for_customer returns them,
 * from what they own read with the due date that blocks (at + due_within)
 * and the half-life of a purchase's weight in days.
 */
Recommended *
serving_recommend(int64 tenant_id, const TenantRules *rules, const CustomerOwned *owned, int k,
				  TimestampTz at, double half_days, int *n)
{
	Request		q = {0};
	Personal   *personal;
	int			npersonal;
	Contribution *contributions;
	int			ncontributions;
	Recommended *rows;
	int			i;

	*n = 0;
	if (k == 0)
		return NULL;
	q.tenant_id = tenant_id;
	q.rules = rules;
	q.has_rules = rules->nexcluded > 0 || rules->npairs > 0;
	q.owned = *owned;
	q.k = k;
	for (i = 0; i < q.owned.n; i++)
		q.nblocked += q.owned.products[i].blocked ? 1 : 0;
	q.recent = palloc(sizeof(OwnedProduct *) * Max(q.owned.n, 1));
	for (i = 0; i < q.owned.n; i++)
		q.recent[i] = &q.owned.products[i];
	q.nrecent = serving_most_recent(q.recent, q.owned.n, RECENT_EVIDENCE);
	q.chosen_cap = 16;
	q.chosen = palloc(sizeof(Chosen) * q.chosen_cap);

	personal = personal_candidates(&q, at, half_days, &npersonal, &contributions, &ncontributions);
	choose_personal(&q, personal, npersonal);
	if (q.nchosen < q.k)
		choose_popular(&q);

	rows = palloc0(sizeof(Recommended) * Max(q.nchosen, 1));
	for (i = 0; i < q.nchosen; i++)
	{
		const Chosen *ch = &q.chosen[i];
		Recommended *row = &rows[i];

		row->product_id = ch->id;
		if (ch->tier != TIER_PERSONAL)
		{
			row->score = ch->score;
			row->reason = ch->tier == TIER_CATEGORY ? "popular in a category you buy from" : "popular";
		}
		else if (ch->personal->as_restock)
		{
			row->restock = true;
			row->score = ch->personal->score;
			row->score_null = ch->personal->score_null;
			row->reason = restock_reason(ch->personal->restock, q.owned.zone);
			row->because = palloc(sizeof(int64));
			row->because[0] = ch->id;
			row->nbecause = 1;
		}
		else
		{
			row->score = ch->personal->score;
			row->reason = "complements your purchases";
			row->because = because_of(contributions, ncontributions, ch->personal->slot, &row->nbecause);
		}
	}
	*n = q.nchosen;
	return rows;
}

/*
 * half_life in days, as the query took it: extract(epoch FROM half_life) /
 * 86400, a numeric made a double; positive and finite.
 */
double
serving_half_life_days(Datum half_life)
{
	double		days = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
														  DirectFunctionCall2(numeric_div,
																			  DirectFunctionCall2(extract_interval,
																								  CStringGetTextDatum("epoch"),
																								  half_life),
																			  NumericGetDatum(int64_to_numeric(SECS_PER_DAY)))));

	if (days <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("half_life must be positive, not %s",
						DatumGetCString(DirectFunctionCall1(interval_out, half_life)))));
	if (isinf(days))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("half-life must be a positive, finite number of days, not %g", days)));
	return days;
}

/*
 * recommend_for_customer(customer_id bigint, k int, tenant_id bigint,
 *		at timestamptz, half_life interval, due_within interval)
 * RETURNS TABLE (rank int, product_id bigint, score float8, reason text, because bigint[])
 */
Datum
upsell_recommend_for_customer(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		tenant_id;
	int			k;
	ServingVersion version;
	TimestampTz at;
	double		half_days;
	TimestampTz due_by;
	const TenantRules *rules;
	CustomerOwned owned;
	Recommended *rows;
	int			n,
				i;

	version = serving_begin_request(fcinfo);
	tenant_id = serving_resolve_tenant(PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2));
	if (PG_ARGISNULL(0) || PG_ARGISNULL(3) || PG_ARGISNULL(4) || PG_ARGISNULL(5))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("customer_id, at, half_life and due_within must not be NULL")));
	if (PG_ARGISNULL(1) || PG_GETARG_INT32(1) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be a non-negative integer, not %s",
						PG_ARGISNULL(1) ? "NULL" : psprintf("%d", PG_GETARG_INT32(1)))));
	k = PG_GETARG_INT32(1);
	at = PG_GETARG_TIMESTAMPTZ(3);
	serving_check_finite_at(at);
	half_days = serving_half_life_days(PG_GETARG_DATUM(4));
	due_by = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval, TimestampTzGetDatum(at),
													 PG_GETARG_DATUM(5)));
	if (k == 0)
	{
		serving_end_request();
		return (Datum) 0;
	}

	rules = serving_tenant_rules(tenant_id);
	serving_begin_facts(version);
	owned = serving_customer_owned(tenant_id, PG_GETARG_INT64(0), false, due_by, false);
	rows = serving_recommend(tenant_id, rules, &owned, k, at, half_days, &n);
	for (i = 0; i < n; i++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};

		values[0] = Int32GetDatum(i + 1);
		values[1] = Int64GetDatum(rows[i].product_id);
		values[2] = Float8GetDatum(rows[i].score);
		nulls[2] = rows[i].score_null;
		values[3] = CStringGetTextDatum(rows[i].reason);
		values[4] = rows[i].because ? PointerGetDatum(upsell_int8_array(rows[i].because, rows[i].nbecause))
			: (Datum) 0;
		nulls[4] = rows[i].because == NULL;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	serving_end_request();
	return (Datum) 0;
}

/* ---- the thank-you page's offers of what a customer owns ------------------ */

#define RESTOCK_OFFERS		5
#define SUBSCRIPTION_OFFERS	3

/* A restock by confidence descending, then product id. */
static int
cmp_restock(const void *a, const void *b)
{
	const OwnedProduct *x = *(const OwnedProduct *const *) a;
	const OwnedProduct *y = *(const OwnedProduct *const *) b;
	int			c = cmp_desc(false, x->confidence, false, y->confidence);

	return c != 0 ? c : cmp_int64(x->product_id, y->product_id);
}

/* A subscription by CV ascending, then product id. */
static int
cmp_subscription(const void *a, const void *b)
{
	const OwnedProduct *x = *(const OwnedProduct *const *) a;
	const OwnedProduct *y = *(const OwnedProduct *const *) b;
	int			c = cmp_desc(false, y->cv, false, x->cv);

	return c != 0 ? c : cmp_int64(x->product_id, y->product_id);
}

/*
 * The page's horizon: at + 14 days.  A consumable due by then is not
 * blocked, and one due between a week before at and then is a restock.
 */
TimestampTz
serving_restock_horizon(TimestampTz at)
{
	Interval	two_weeks = {0, 14, 0};

	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval, TimestampTzGetDatum(at),
												   IntervalPGetDatum(&two_weeks)));
}

/*
 * The offers of what the customer owns, read with serving_customer_owned
 * up to serving_restock_horizon(at): the consumables coming due within two
 * weeks and overdue by a week at most (the 5 most confident), then the
 * products bought 3 times or more at regular intervals (a CV below 0.5; the
 * 3 most regular), with 1.11's scores and reasons.
 */
OwnedOffer *
serving_owned_offers(const CustomerOwned *owned, bool at_null, TimestampTz at, int *noffers)
{
	Interval	one_week = {0, 7, 0};
	TimestampTz from = 0,
				to = 0;
	const OwnedProduct **restocks = palloc(sizeof(OwnedProduct *) * Max(owned->n, 1));
	int			nrestocks = 0;
	const OwnedProduct **subscriptions = palloc(sizeof(OwnedProduct *) * Max(owned->n, 1));
	int			nsubscriptions = 0;
	OwnedOffer *offers;
	int			i;

	if (!at_null)
	{
		from = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval, TimestampTzGetDatum(at),
													   IntervalPGetDatum(&one_week)));
		to = serving_restock_horizon(at);
	}
	for (i = 0; i < owned->n; i++)
	{
		const OwnedProduct *o = &owned->products[i];

		if (!o->blocked_null && !o->blocked && !at_null && !o->due_null && o->next_due >= from &&
			o->next_due <= to && !o->confidence_null && o->confidence > 0)
			restocks[nrestocks++] = o;
		if (!o->purchases_null && o->purchases >= 3 && !o->cv_null && o->cv < 0.5)
			subscriptions[nsubscriptions++] = o;
	}
	qsort(restocks, nrestocks, sizeof(OwnedProduct *), cmp_restock);
	qsort(subscriptions, nsubscriptions, sizeof(OwnedProduct *), cmp_subscription);
	nrestocks = Min(nrestocks, RESTOCK_OFFERS);
	nsubscriptions = Min(nsubscriptions, SUBSCRIPTION_OFFERS);

	offers = palloc(sizeof(OwnedOffer) * Max(nrestocks + nsubscriptions, 1));
	for (i = 0; i < nrestocks; i++)
	{
		const OwnedProduct *o = restocks[i];
		OwnedOffer *x = &offers[i];
		char	   *every = serving_rounded_text(o->interval_days, 0);

		x->type = OFFER_RESTOCK;
		x->product_id = o->product_id;
		x->score = o->confidence;
		if (o->next_due <= at)
			x->reason = psprintf("due again now (every %s days)", every);
		else
		{
			/* round(extract(epoch FROM next_due - at)::numeric / 86400) */
			Datum		epoch = DirectFunctionCall2(extract_interval, CStringGetTextDatum("epoch"),
													DirectFunctionCall2(timestamp_mi,
																		TimestampTzGetDatum(o->next_due),
																		TimestampTzGetDatum(at)));
			Datum		days = DirectFunctionCall2(numeric_round,
												   DirectFunctionCall2(numeric_div, epoch,
																	   NumericGetDatum(int64_to_numeric(SECS_PER_DAY))),
												   Int32GetDatum(0));

			x->reason = psprintf("due again in %s days (every %s days)",
								 DatumGetCString(DirectFunctionCall1(numeric_out, days)), every);
		}
	}
	for (i = 0; i < nsubscriptions; i++)
	{
		const OwnedProduct *o = subscriptions[i];
		OwnedOffer *x = &offers[nrestocks + i];

		x->type = OFFER_SUBSCRIPTION;
		x->product_id = o->product_id;
		x->score = 1 / (1 + o->cv);
		x->reason = psprintf("bought " INT64_FORMAT " times, every %s days: subscribe", o->purchases,
							 o->median_null ? "" : serving_rounded_text(o->median_gap_days, 0));
	}
	*noffers = nrestocks + nsubscriptions;
	return offers;
}
