/*
 * serving_offers.c
 *		What every stage proposes through (a Proposal), the pinned offers,
 *		and the merge under the stage's rules into the SRF's rows; and
 *		_merge_offers, the merge of a stage that gathers its candidates in SQL
 *		(post-purchase).  The ranking is the plain C merge of src/core/offers.c.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

#include "serving.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_merge_offers);

/*
 * The offer types the unit's experiment variant shows (all without one);
 * the experiment must be the tenant's.
 */
uint32
serving_allowed_types(text *experiment, text *unit_id, Stage stage, int64 tenant_id)
{
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bool		isnull;
	Datum		d;
	Datum	   *elems;
	bool	   *enulls;
	int			n,
				i;
	uint32		allowed = 0;

	if (experiment == NULL)
		return OFFER_ALL_TYPES;
	args[0] = PointerGetDatum(experiment);
	args[1] = PointerGetDatum(unit_id);
	if (unit_id == NULL)
		nulls[1] = 'n';
	args[2] = CStringGetTextDatum(serving_stage_names[stage]);
	args[3] = Int64GetDatum(tenant_id);
	serving_run(serving.variant, args, nulls);
	d = serving_col(0, 1, &isnull);
	if (isnull)
		return OFFER_ALL_TYPES;
	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &enulls, &n);
	for (i = 0; i < n; i++)
	{
		int			t;

		if (!enulls[i] && (t = offer_type_of(TextDatumGetCString(elems[i]))) >= 0)
			allowed |= 1u << t;
	}
	return allowed;
}

bool
serving_excluded(const TenantRules *r, int64 id, const int64 *context, size_t ncontext)
{
	int			i;

	if (offers_contains(r->excluded, r->nexcluded, id))
		return true;
	for (i = 0; i < r->npairs; i++)
		if (r->pair_product[i] == id && offers_contains(context, ncontext, r->pair_with[i]))
			return true;
	return false;
}

/*
 * Whether an offer of several products holds both of a "never a next to b"
 * rule: bought together, one is next to the other in the cart (ids in any
 * order).
 */
static bool
pair_inside(const TenantRules *r, const int64 *ids, int nids)
{
	for (int i = 0; i < r->npairs; i++)
	{
		bool		a = false,
					b = false;

		for (int j = 0; j < nids; j++)
		{
			a = a || ids[j] == r->pair_product[i];
			b = b || ids[j] == r->pair_with[i];
		}
		if (a && b && r->pair_product[i] != r->pair_with[i])
			return true;
	}
	return false;
}

static bool
none_excluded(const TenantRules *r, const int64 *ids, int nids, const int64 *context, size_t ncontext)
{
	int			i;

	for (i = 0; i < nids; i++)
		if (serving_excluded(r, ids[i], context, ncontext))
			return false;
	return nids < 2 || !pair_inside(r, ids, nids);
}

void
serving_proposal_init(Proposal *p, int cap)
{
	p->cap = Max(cap, 16);
	p->n = 0;
	p->note = NULL;
	p->c = palloc(p->cap * sizeof(OfferCandidate));
	p->row = palloc(p->cap * sizeof(OfferRow));
}

OfferCandidate *
serving_propose(Proposal *p, OfferType type, int64 *ids, int nids, double score,
		Datum discount, char *reason)
{
	OfferCandidate *c;

	if (p->n == p->cap)
	{
		p->cap *= 2;
		p->c = repalloc(p->c, p->cap * sizeof(OfferCandidate));
		p->row = repalloc(p->row, p->cap * sizeof(OfferRow));
	}
	c = &p->c[p->n];
	memset(c, 0, sizeof(*c));
	c->type = type;
	c->ids = ids;
	c->nids = nids;
	c->score = score;
	c->showable = true;
	p->row[p->n].discount = discount;
	p->row[p->n].reason = reason;
	p->n++;
	return c;
}

Datum
serving_zero_discount(void)
{
	return NumericGetDatum(int64_to_numeric(0));
}

bool
serving_active_at(bool has_from, TimestampTz from, bool has_to, TimestampTz to, TimestampTz at)
{
	return (!has_from || from <= at) && (!has_to || at < to);
}

/* Whether an offer already proposed holds the product (ids in any order). */
static bool
proposed(const Proposal *p, int64 id)
{
	for (int i = 0; i < p->n; i++)
		for (int j = 0; j < p->c[i].nids; j++)
			if (p->c[i].ids[j] == id)
				return true;
	return false;
}

/* Proposes one bestseller; true when it can take a slot of its own. */
static bool
propose_popular(Proposal *p, const TenantRules *r, const int64 *context, size_t ncontext,
				PopularSkip skip, void *arg, int64 *id, int64 rank, const char *category)
{
	bool		own_slot;

	if (skip(arg, *id, category))
		return false;
	own_slot = !offers_contains(context, ncontext, *id) && !serving_excluded(r, *id, context, ncontext) &&
		!proposed(p, *id);
	serving_propose(p, OFFER_COMPLEMENT, id, 1, 1e-6 / (double) rank, serving_zero_discount(), "popular");
	return own_slot;
}

/*
 * Bestsellers, in stock, far below every other offer: what fills the slots
 * the evidence leaves.  The tenant's first POPULAR are cached; when the
 * context blocks so many of them (a shop whose bestsellers are one
 * category, all substitutes of the cart's line) that fewer than the stage's
 * slots remain, the next are read, a batch at a time, until the slots are
 * filled or the catalog is exhausted.
 */
void
serving_propose_popular(Proposal *p, const TenantRules *r, Stage stage,
						const int64 *context, size_t ncontext, PopularSkip skip, void *arg)
{
	int			want = r->stage[stage].max_offers;
	int			filled = 0;
	int64		after;

	for (int i = 0; i < r->npopular; i++)
		if (propose_popular(p, r, context, ncontext, skip, arg, (int64 *) &r->popular[i],
							r->popular_rank[i], r->popular_category[i]))
			filled++;
	if (r->npopular < POPULAR)
		return;
	after = r->popular_rank[POPULAR - 1];
	while (filled < want)
	{
		Datum		args[3];
		uint64		n;
		int64	   *ids;

		CHECK_FOR_INTERRUPTS();
		args[0] = Int64GetDatum(r->tenant_id);
		args[1] = Int64GetDatum(after);
		args[2] = Int32GetDatum(POPULAR_BATCH);
		n = serving_run(serving.popular_after, args, NULL);
		ids = palloc(Max(n, 1) * sizeof(int64));
		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;

			ids[i] = DatumGetInt64(serving_col(i, 1, &isnull));
			after = DatumGetInt64(serving_col(i, 2, &isnull));
			if (propose_popular(p, r, context, ncontext, skip, arg, &ids[i], after, serving_col_text(i, 3)))
				filled++;
		}
		if (n < POPULAR_BATCH)
			break;
	}
}

/*
 * The stage's pinned offers active at `now` whose trigger matches: always,
 * a context product, one of the context's categories, or the cart value.
 */
void
serving_propose_pinned(Proposal *p, const TenantRules *r, Stage stage,
			   const int64 *context, size_t ncontext,
			   char **categories, int ncategories, Numeric cart_value, TimestampTz now)
{
	int			i,
				j;

	for (i = 0; i < r->npinned; i++)
	{
		const PinnedOffer *f = &r->pinned[i];
		bool		match = false;
		OfferCandidate *c;

		if (f->stage != stage || !serving_active_at(f->has_from, f->active_from, f->has_to, f->active_to, now))
			continue;
		switch (f->trigger)
		{
			case TRIGGER_ALWAYS:
				match = true;
				break;
			case TRIGGER_PRODUCT:
				match = offers_contains(context, ncontext, f->trigger_product);
				break;
			case TRIGGER_CATEGORY:
				for (j = 0; j < ncategories && !match; j++)
					match = strcmp(categories[j], f->trigger_category) == 0;
				break;
			case TRIGGER_CART_VALUE:
				match = cart_value != NULL && serving_numeric_at_most(f->min_cart_value, cart_value);
				break;
		}
		if (!match)
			continue;
		c = serving_propose(p, OFFER_PINNED, f->ids, f->nids, 0, NumericGetDatum(f->discount), f->reason);
		c->priority = f->priority;
		c->offer_id = f->offer_id;
		c->showable = f->in_stock;
	}
}

/*
 * Merges the proposal under the stage's rules and puts the chosen offers
 * into the SRF's tuplestore.
 */
void
serving_emit(FunctionCallInfo fcinfo, Proposal *p, const TenantRules *r, Stage stage,
	 uint32 allowed, const int64 *context, size_t ncontext)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MergeRules	rules;
	int		   *chosen;
	int			n,
				i;

	rules.max_offers = r->stage[stage].max_offers;
	rules.allowed = allowed;
	memcpy(rules.weight, r->stage[stage].weight, sizeof(rules.weight));
	rules.context = context;
	rules.ncontext = ncontext;
	for (i = 0; i < p->n; i++)
		if (p->c[i].showable && !none_excluded(r, p->c[i].ids, p->c[i].nids, context, ncontext))
			p->c[i].showable = false;
	chosen = palloc(Max(rules.max_offers, 1) * sizeof(int));
	n = offers_merge(p->c, p->n, &rules, chosen);
	for (i = 0; i < n; i++)
	{
		const OfferCandidate *c = &p->c[chosen[i]];
		const OfferRow *row = &p->row[chosen[i]];
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};
		char	   *reason;

		values[0] = CStringGetTextDatum(serving_stage_names[stage]);
		values[1] = CStringGetTextDatum(offer_type_names[c->type]);
		values[2] = PointerGetDatum(upsell_int8_array(c->ids, c->nids));
		values[3] = Int32GetDatum(i + 1);
		values[4] = Float8GetDatum(c->score);
		nulls[4] = c->type == OFFER_PINNED;	/* a merchant's offer has no score */
		values[5] = row->discount;
		reason = row->reason;
		if (p->note)
			reason = reason ? psprintf("%s; %s", reason, p->note) : p->note;
		values[6] = reason ? CStringGetTextDatum(reason) : (Datum) 0;
		nulls[6] = reason == NULL;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

text *
serving_opt_text(FunctionCallInfo fcinfo, int arg)
{
	return PG_ARGISNULL(arg) ? NULL : PG_GETARG_TEXT_PP(arg);
}

/*
 * _merge_offers(stage text, t bigint, context bigint[], cart_value numeric,
 *				 candidates upsell.offer[], experiment text, unit_id text)
 * RETURNS SETOF upsell.offer
 *
 * The merge for a stage that gathers its candidates in SQL (post-purchase):
 * stock is looked up for the proposed products, the rest as above.
 */
Datum
upsell_merge_offers(PG_FUNCTION_ARGS)
{
	Stage		stage;
	int64		tenant_id;
	int64	   *context = NULL;
	int			ncontext = 0;
	Numeric		cart_value = PG_ARGISNULL(3) ? NULL : PG_GETARG_NUMERIC(3);
	TenantRules *r;
	uint32		allowed;
	Proposal	p;
	int64	   *proposed;
	int			nproposed = 0;
	int64	   *stocked = NULL;
	int			nstocked = 0;
	char	  **categories = NULL;
	int			ncategories = 0;
	int			i,
				j;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("stage and tenant must not be NULL")));
	stage = serving_stage_of(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	tenant_id = PG_GETARG_INT64(1);
	serving_check_bound(tenant_id);
	if (!PG_ARGISNULL(2))
	{
		context = upsell_int8_elems(DatumGetArrayTypeP(PG_GETARG_DATUM(2)), &ncontext);
		ncontext = serving_sort_unique(context, ncontext);
	}
	serving_begin_request(fcinfo);
	allowed = serving_allowed_types(serving_opt_text(fcinfo, 5), serving_opt_text(fcinfo, 6), stage, tenant_id);
	r = serving_tenant_rules(tenant_id);

	serving_proposal_init(&p, 32);
	if (!PG_ARGISNULL(4))
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(4);
		Oid			rowtype = ARR_ELEMTYPE(arr);
		int16		typlen;
		bool		typbyval;
		char		typalign;
		Datum	   *elems;
		bool	   *nulls;
		int			n;
		TupleDesc	desc;

		get_typlenbyvalalign(rowtype, &typlen, &typbyval, &typalign);
		deconstruct_array(arr, rowtype, typlen, typbyval, typalign, &elems, &nulls, &n);
		desc = lookup_rowtype_tupdesc(rowtype, -1);
		if (desc->natts != 7)
			elog(ERROR, "candidates must be of type upsell.offer");
		for (i = 0; i < n; i++)
		{
			HeapTupleHeader h;
			HeapTupleData tup;
			Datum		values[7];
			bool		isnull[7];
			int			t;
			int			nids;
			int64	   *ids;

			if (nulls[i])
				continue;
			h = DatumGetHeapTupleHeader(elems[i]);
			tup.t_len = HeapTupleHeaderGetDatumLength(h);
			tup.t_data = h;
			heap_deform_tuple(&tup, desc, values, isnull);
			/* no score, no evidence; no products, nothing to offer */
			if (isnull[1] || isnull[2] || isnull[4])
				continue;
			t = offer_type_of(TextDatumGetCString(values[1]));
			if (t < 0 || t == OFFER_PINNED)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown offer type \"%s\"", TextDatumGetCString(values[1]))));
			ids = upsell_int8_elems(DatumGetArrayTypeP(values[2]), &nids);
			if (nids == 0)
				continue;
			serving_propose(&p, (OfferType) t, ids, nids, DatumGetFloat8(values[4]),
					isnull[5] ? serving_zero_discount() : values[5],
					isnull[6] ? NULL : TextDatumGetCString(values[6]));
		}
		ReleaseTupleDesc(desc);
	}

	/* stock of every proposed product, looked up once */
	for (i = 0, j = 0; i < p.n; i++)
		j += p.c[i].nids;
	proposed = palloc(Max(j, 1) * sizeof(int64));
	for (i = 0; i < p.n; i++)
		for (j = 0; j < p.c[i].nids; j++)
			proposed[nproposed++] = p.c[i].ids[j];
	nproposed = serving_sort_unique(proposed, nproposed);
	if (nproposed > 0)
	{
		Datum		args[2];
		uint64		n,
					k;
		bool		isnull;

		args[0] = Int64GetDatum(tenant_id);
		args[1] = PointerGetDatum(upsell_int8_array(proposed, nproposed));
		n = serving_run(serving.in_stock, args, NULL);
		stocked = palloc(Max(n, 1) * sizeof(int64));
		for (k = 0; k < n; k++)
			stocked[nstocked++] = DatumGetInt64(serving_col(k, 1, &isnull));
		nstocked = serving_sort_unique(stocked, nstocked);
	}
	for (i = 0; i < p.n; i++)
		for (j = 0; j < p.c[i].nids; j++)
			if (!offers_contains(stocked, nstocked, p.c[i].ids[j]))
				p.c[i].showable = false;

	/* the context's categories, for pinned offers triggered by one */
	for (i = 0; i < r->npinned; i++)
		if (r->pinned[i].stage == stage && r->pinned[i].trigger == TRIGGER_CATEGORY)
			break;
	if (i < r->npinned && ncontext > 0)
	{
		Datum		args[2];
		uint64		n,
					k;

		args[0] = Int64GetDatum(tenant_id);
		args[1] = PointerGetDatum(upsell_int8_array(context, ncontext));
		n = serving_run(serving.categories, args, NULL);
		categories = palloc(Max(n, 1) * sizeof(char *));
		for (k = 0; k < n; k++)
			categories[ncategories++] = serving_col_text(k, 1);
	}
	/* (at: the time the stage is asked for, as its candidates were) */
	serving_propose_pinned(&p, r, stage, context, ncontext, categories, ncategories, cart_value,
						   PG_ARGISNULL(7) ? GetCurrentTransactionStartTimestamp() : PG_GETARG_TIMESTAMPTZ(7));

	serving_emit(fcinfo, &p, r, stage, allowed, context, ncontext);
	serving_end_request();
	PG_RETURN_NULL();
}
