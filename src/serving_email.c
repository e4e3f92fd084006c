/*
 * serving_email.c
 *		upsell.email_sequence(customer_id, steps, tenant_id, at): a
 *		post-purchase email sequence, one offer per step.
 *
 * Why C: as PL/pgSQL it read the customer's history through the view
 * purchase_interval_model joined per product to product_model,
 * product_interval_model and the consumable rule, and looked every
 * candidate up again: 0.8 ms at the median at 10M order lines, 350 ms for a
 * customer of 15,238 products.  Here what the customer owns comes from
 * their history row and the products' facts cache (serving_owned.c), the
 * personal recommendations from serving_recommend.
 *
 * The answer is 1.11's.  The candidates:
 *	complement		recommend_for_customer's complements (asked for 4 x steps,
 *					nothing due), referring to the purchase that weighs most;
 *	popular			its bestsellers, as the fallback (tier 2);
 *	restock			owned consumables due within the 30 days the sequence
 *					runs, not overdue by more than their interval;
 *	subscription	bought 3 times or more at regular intervals (a CV below
 *					0.5), scored 1 - CV;
 *	upgrade			the cheapest pricier product in stock of the variant group
 *					of one of the 20 most recently bought durables with a price,
 *					not owned;
 * each in stock and not excluded next to what the customer owns; by tier,
 * score descending, product id, kind.  Then, step by step, the best unused
 * one: another category than the previous step's first, then a personal
 * offer before a popular one, then another kind than the previous step's,
 * then the score; a product once.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "serving.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_email_sequence);

#define MAX_STEPS			100
#define RESTOCK_WITHIN_DAYS	30	/* the month the sequence runs */
#define UPGRADE_DURABLES	20	/* the most recently bought durables */
#define HALF_LIFE_DAYS		90	/* recommend_for_customer's default */

typedef struct Candidate
{
	const char *kind;
	int64		product_id;
	const char *category;
	int			tier;
	bool		score_null;
	double		score;
	bool		refers_null;
	int64		refers_to;
	char	   *reason;			/* a popular one's, as recommend_for_customer
								 * worded it; the others' are worded when
								 * chosen (reason_of) */
	bool		used;
} Candidate;

/* What the email is about, for the candidates' checks and reasons. */
typedef struct Email
{
	int64		tenant_id;
	const TenantRules *rules;
	bool		has_rules;
	CustomerOwned owned;
	Candidate  *c;
	int			n;
	int			cap;
} Email;

static const OwnedProduct *
owned_product(const Email *e, int64 id)
{
	int			i = serving_sorted_index(e->owned.ids, e->owned.n, id);

	return i >= 0 ? &e->owned.products[i] : NULL;
}

/* A candidate in stock and not excluded next to what the customer owns. */
static Candidate *
add_candidate(Email *e, const char *kind, int64 id, int tier, bool score_null, double score,
			  bool refers_null, int64 refers_to)
{
	const CatalogFacts *f = serving_cached_facts(e->tenant_id, id);
	Candidate  *c;

	if (!f->in_stock || (e->has_rules && serving_excluded(e->rules, id, e->owned.ids, e->owned.n)))
		return NULL;
	if (e->n == e->cap)
	{
		e->cap *= 2;
		e->c = repalloc(e->c, sizeof(Candidate) * e->cap);
	}
	c = &e->c[e->n++];
	memset(c, 0, sizeof(Candidate));
	c->kind = kind;
	c->product_id = id;
	c->category = f->category;
	c->tier = tier;
	c->score_null = score_null;
	c->score = score;
	c->refers_null = refers_null;
	c->refers_to = refers_to;
	return c;
}

/* How a product is named in a reason: its title, else its id (_product_label). */
static const char *
label(const Email *e, int64 id)
{
	const CatalogFacts *f = serving_cached_facts(e->tenant_id, id);

	return f->title != NULL ? f->title : psprintf("product " INT64_FORMAT, id);
}

/* The reason of a candidate (format's %s of a NULL is empty). */
static char *
reason_of(const Email *e, const Candidate *c, const char *fallback)
{
	const OwnedProduct *o = c->refers_null ? NULL : owned_product(e, c->refers_to);
	const char *bought = o != NULL && !o->last_null ? serving_shop_day(e->owned.zone, o->last_at) : "";

	if (strcmp(c->kind, "complement") == 0)
		return psprintf("goes with %s you bought on %s", label(e, c->refers_to), bought);
	if (strcmp(c->kind, "restock") == 0)
		return psprintf("%s you bought on %s is due around %s (every %s days)", label(e, c->refers_to), bought,
						o != NULL && !o->due_null ? serving_shop_day(e->owned.zone, o->next_due) : "",
						o != NULL && !o->interval_null ? serving_rounded_text(o->interval_days, 1) : "");
	if (strcmp(c->kind, "subscription") == 0)
		return psprintf("you bought %s %s times, every %s days: subscribe and save", label(e, c->refers_to),
						o != NULL && !o->purchases_null ? psprintf(INT64_FORMAT, o->purchases) : "",
						o != NULL && !o->median_null ? serving_rounded_text(o->median_gap_days, 1) : "");
	if (strcmp(c->kind, "upgrade") == 0)
		return psprintf("the step up from %s you bought on %s", label(e, c->refers_to), bought);
	return pstrdup(fallback);
}

/* tier, score descending (NULL first), product id, kind */
static int
cmp_candidate(const void *a, const void *b)
{
	const Candidate *x = a;
	const Candidate *y = b;

	if (x->tier != y->tier)
		return x->tier < y->tier ? -1 : 1;
	if (x->score_null != y->score_null)
		return x->score_null ? -1 : 1;
	if (!x->score_null && x->score != y->score)
		return x->score > y->score ? -1 : 1;
	if (x->product_id != y->product_id)
		return x->product_id < y->product_id ? -1 : 1;
	return strcmp(x->kind, y->kind);
}

/*
 * The upgrade of a durable: the cheapest product in stock of its variant
 * group priced above it, not owned (most orders, then id, at a price); 0:
 * none.  Read a batch at a time, past the ones the customer owns.
 */
static int64
upgrade_of(const Email *e, const char *group, Numeric price)
{
	int64		limit = 8;

	for (;;)
	{
		Datum		args[4];
		uint64		n;

		args[0] = Int64GetDatum(e->tenant_id);
		args[1] = CStringGetTextDatum(group);
		args[2] = NumericGetDatum(price);
		args[3] = Int64GetDatum(limit);
		n = serving_run(serving.group_upgrades, args, NULL);
		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;
			int64		id = DatumGetInt64(serving_col((int) i, 1, &isnull));

			if (owned_product(e, id) == NULL)
				return id;
		}
		if (n < (uint64) limit)
			return 0;
		limit *= 4;
	}
}

/*
 * email_sequence(customer_id bigint, steps int, tenant_id bigint, at timestamptz)
 * RETURNS TABLE (step int, kind text, product_id bigint, category text,
 *				  score float8, refers_to bigint, reason text)
 */
Datum
upsell_email_sequence(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Email		e = {0};
	ServingVersion version;
	int			steps;
	TimestampTz at;
	Interval	month = {0, RESTOCK_WITHIN_DAYS, 0};
	Interval	one_day = {0, 1, 0};
	TimestampTz due_until;
	Recommended *recommended;
	int			nrecommended;
	int64	   *recommended_ids;
	const OwnedProduct **durables;
	int			ndurables = 0;
	const char *prev_category = NULL;
	const char *prev_kind = NULL;
	int			i,
				s;

	version = serving_begin_request(fcinfo);
	e.tenant_id = serving_resolve_tenant(PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2));
	if (PG_ARGISNULL(0) || PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("customer_id and at must not be NULL")));
	if (PG_ARGISNULL(1) || PG_GETARG_INT32(1) < 0 || PG_GETARG_INT32(1) > MAX_STEPS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("steps must be between 0 and %d, not %s", MAX_STEPS,
						PG_ARGISNULL(1) ? "NULL" : psprintf("%d", PG_GETARG_INT32(1)))));
	steps = PG_GETARG_INT32(1);
	at = PG_GETARG_TIMESTAMPTZ(3);
	serving_check_finite_at(at);
	e.rules = serving_tenant_rules(e.tenant_id);
	e.has_rules = e.rules->nexcluded > 0 || e.rules->npairs > 0;
	serving_begin_facts(version);
	/* (blocked as recommend_for_customer asked with nothing due: due by at) */
	e.owned = serving_customer_owned(e.tenant_id, PG_GETARG_INT64(0), false, at, false);
	e.cap = 64;
	e.c = palloc(sizeof(Candidate) * e.cap);

	/* complements and fallbacks: what recommend_for_customer would show */
	recommended = serving_recommend(e.tenant_id, e.rules, &e.owned, 4 * steps, at, HALF_LIFE_DAYS,
									&nrecommended);
	recommended_ids = palloc(sizeof(int64) * Max(nrecommended, 1));
	for (i = 0; i < nrecommended; i++)
		recommended_ids[i] = recommended[i].product_id;
	serving_cache_facts(e.tenant_id, recommended_ids, nrecommended);
	for (i = 0; i < nrecommended; i++)
	{
		const Recommended *r = &recommended[i];
		Candidate  *c;

		if (r->restock)
			continue;
		c = add_candidate(&e, r->because ? "complement" : "popular", r->product_id, r->because ? 1 : 2,
						  r->score_null, r->score, r->because == NULL, r->because ? r->because[0] : 0);
		if (c != NULL)
			c->reason = r->because ? NULL : r->reason;
	}

	/* restocks: owned consumables due within the month, not lapsed */
	due_until = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval, TimestampTzGetDatum(at),
														IntervalPGetDatum(&month)));
	for (i = 0; i < e.owned.n; i++)
	{
		const OwnedProduct *o = &e.owned.products[i];
		TimestampTz lapsed;

		if (!o->consumable || o->due_null || o->interval_null || o->next_due > due_until)
			continue;
		lapsed = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval, TimestampTzGetDatum(at),
														 DirectFunctionCall2(interval_mul, IntervalPGetDatum(&one_day),
																			 Float8GetDatum(o->interval_days))));
		if (o->next_due < lapsed)
			continue;
		add_candidate(&e, "restock", o->product_id, 1, o->confidence_null, o->confidence, false, o->product_id);
	}
	/* subscriptions: bought 3 times or more at regular intervals */
	for (i = 0; i < e.owned.n; i++)
	{
		const OwnedProduct *o = &e.owned.products[i];

		if (!o->purchases_null && o->purchases >= 3 && !o->cv_null && o->cv < 0.5)
			add_candidate(&e, "subscription", o->product_id, 1, false, 1 - o->cv, false, o->product_id);
	}
	/* upgrades: of the most recently bought durables with a variant group and a price */
	durables = palloc(sizeof(OwnedProduct *) * Max(e.owned.n, 1));
	for (i = 0; i < e.owned.n; i++)
	{
		const OwnedProduct *o = &e.owned.products[i];
		const CatalogFacts *f = serving_cached_facts(e.tenant_id, o->product_id);

		if (!o->consumable && f->variant_group != NULL && f->price != NULL)
			durables[ndurables++] = o;
	}
	ndurables = serving_most_recent(durables, ndurables, UPGRADE_DURABLES);
	for (i = 0; i < ndurables; i++)
	{
		const CatalogFacts *f = serving_cached_facts(e.tenant_id, durables[i]->product_id);
		int64		up = upgrade_of(&e, f->variant_group, f->price);

		if (up == 0)
			continue;
		serving_cache_facts(e.tenant_id, &up, 1);
		add_candidate(&e, "upgrade", up, 1, false, 0.5, false, durables[i]->product_id);
	}

	qsort(e.c, e.n, sizeof(Candidate), cmp_candidate);

	/*
	 * Greedy, one offer per product: another category than the previous
	 * step's first, then personal offers over popular fallbacks, then
	 * another kind than the previous step's, then the score (a score that
	 * is NULL never wins: the row comparison is then unknown)
	 */
	for (s = 1; s <= steps; s++)
	{
		const Candidate *best = NULL;
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};

		CHECK_FOR_INTERRUPTS();
		for (i = 0; i < e.n; i++)
		{
			const Candidate *c = &e.c[i];
			bool		c_other,
						b_other;

			if (c->used)
				continue;
			if (best == NULL)
			{
				best = c;
				continue;
			}
			c_other = prev_category == NULL ? c->category != NULL
				: c->category == NULL || strcmp(c->category, prev_category) != 0;
			b_other = prev_category == NULL ? best->category != NULL
				: best->category == NULL || strcmp(best->category, prev_category) != 0;
			if (c_other != b_other)
			{
				if (c_other)
					best = c;
				continue;
			}
			if (c->tier != best->tier)
			{
				if (c->tier < best->tier)
					best = c;
				continue;
			}
			c_other = prev_kind == NULL || strcmp(c->kind, prev_kind) != 0;
			b_other = prev_kind == NULL || strcmp(best->kind, prev_kind) != 0;
			if (c_other != b_other)
			{
				if (c_other)
					best = c;
				continue;
			}
			if (!c->score_null && !best->score_null && c->score > best->score)
				best = c;
		}
		if (best == NULL)
			break;
		for (i = 0; i < e.n; i++)
			if (e.c[i].product_id == best->product_id)
				e.c[i].used = true;
		values[0] = Int32GetDatum(s);
		values[1] = CStringGetTextDatum(best->kind);
		values[2] = Int64GetDatum(best->product_id);
		values[3] = best->category ? CStringGetTextDatum(best->category) : (Datum) 0;
		nulls[3] = best->category == NULL;
		values[4] = Float8GetDatum(best->score);
		nulls[4] = best->score_null;
		values[5] = Int64GetDatum(best->refers_to);
		nulls[5] = best->refers_null;
		/* (worded for the steps only: a date in the shop's zone costs) */
		values[6] = CStringGetTextDatum(reason_of(&e, best, best->reason));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		prev_category = best->category;
		prev_kind = best->kind;
	}
	serving_end_request();
	return (Datum) 0;
}
