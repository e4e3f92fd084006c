/*
 * serving_post_purchase.c
 *		upsell.post_purchase_offers(order_items, customer_id, tenant_id,
 *		experiment, unit_id, at): the thank-you page stage.
 *
 * Why C: in PL/pgSQL it was the slowest page of part 90 at the median
 * (0.69 ms at 10M order lines, the cart's 0.10 ms): a call of _cart_blocked,
 * the complements' aggregate over pair_model, the bestsellers numbered by
 * product_popularity, each planned or run as statements of their own.  Here
 * the order's products and the candidates are looked up in the per-backend
 * facts cache (serving_owned.c), the bestsellers come from the rules' cache,
 * and one query reads the order's pair lists.
 *
 * The candidates are 1.11's PL/pgSQL stage's, in its order (but for the
 * complements' stock, below):
 *	complements		of the order's products (noisy-OR of pair_list_model's
 *					scores), never one of them or a product the customer owns
 *					and may not be offered; the 12 best in stock that do not
 *					substitute a product of the order (its variant groups, the
 *					categories that substitute its categories) and are not
 *					excluded next to it (1.11's PL/pgSQL took the 24 best
 *					before it left out those out of stock);
 *	bestsellers		in stock, by popularity rank, the first 12 kept by the same
 *					rules, far below (score 1e-6 / rank);
 *	restocks and a subscription pitch (serving_owned_offers);
 * every reason saying how many of the order's products the models do not
 * know; then the merge of any stage: the candidates' stock, the merchant's
 * pinned offers of the stage active at `at`, exclusions, weights, the
 * experiment's offer types.  The noisy-OR's logs are summed in doubles, in
 * one order (the order's products by id, each list in its order), as the
 * cart stage sums them, where the PL/pgSQL summed numerics: a score may
 * differ in its last bits (sql/70_recommend_customer compares the two).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "serving.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_post_purchase_offers);

#define COMPLEMENTS_READ	24
#define COMPLEMENTS_KEPT	12
#define POPULAR_KEPT		12
#define MOST_LIKELY			0.999999	/* least(score, this): no pair is a
										 * certainty */

/* What a candidate must not be next to the order. */
typedef struct OrderBlocks
{
	const TenantRules *rules;
	const int64 *items;			/* the order's products, ascending */
	int			nitems;
	const int64 *owned;			/* the customer's blocked products, ascending */
	int			nowned;
	const char **groups;		/* the order's variant groups */
	int			ngroups;
	const char **categories;	/* the categories that substitute the order's */
	int			ncategories;
} OrderBlocks;

typedef struct Complement
{
	int64		id;
	double		log_miss;		/* sum of ln(1 - least(score, MOST_LIKELY)) */
	double		score;
} Complement;

static bool
listed(const char *s, const char **list, int n)
{
	if (s == NULL)
		return false;
	for (int i = 0; i < n; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

/*
 * A substitute of the order's products, or excluded next to them (a
 * product, a category, a product next to one of the order's).
 */
static bool
blocked_next_to_order(const OrderBlocks *b, int64 id, const char *category, const char *group)
{
	return listed(group, b->groups, b->ngroups) || listed(category, b->categories, b->ncategories) ||
		serving_excluded(b->rules, id, b->items, b->nitems);
}

static int
cmp_complement(const void *a, const void *b)
{
	const Complement *x = a;
	const Complement *y = b;

	if (x->score != y->score)
		return x->score > y->score ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id ? 1 : 0;
}

/*
 * The order's substitutes: its products' variant groups, and the categories
 * that substitute its categories (order_categories, distinct) as
 * category_model lists them, as _cart_blocked finds them.  The products'
 * facts are cached by the caller.
 */
static void
order_substitutes(OrderBlocks *b, int64 tenant_id, char **order_categories, int norder_categories)
{
	Datum	   *categories = palloc(sizeof(Datum) * Max(norder_categories, 1));
	Datum		args[2];
	uint64		rows,
				r;

	b->groups = palloc(sizeof(char *) * Max(b->nitems, 1));
	b->ngroups = 0;
	for (int i = 0; i < b->nitems; i++)
	{
		const CatalogFacts *f = serving_cached_facts(tenant_id, b->items[i]);

		if (f->variant_group != NULL)
			b->groups[b->ngroups++] = f->variant_group;
	}
	b->categories = NULL;
	b->ncategories = 0;
	if (norder_categories == 0)
		return;
	for (int i = 0; i < norder_categories; i++)
		categories[i] = CStringGetTextDatum(order_categories[i]);
	args[0] = Int64GetDatum(tenant_id);
	args[1] = PointerGetDatum(construct_array(categories, norder_categories, TEXTOID, -1, false, TYPALIGN_INT));
	rows = serving_run(serving.substitute_categories, args, NULL);
	b->categories = palloc(sizeof(char *) * Max(rows, 1));
	for (r = 0; r < rows; r++)
	{
		char	   *category = serving_col_text((int) r, 1);

		if (category != NULL)
			b->categories[b->ncategories++] = category;
	}
}

/* A candidate's reason, with what the order lacks when it lacks something. */
static char *
noted(const char *reason, const char *note)
{
	return note ? psprintf("%s; %s", reason, note) : pstrdup(reason);
}

/*
 * The complements of the order: the COMPLEMENTS_KEPT best of its pair
 * lists' products (not its own, not the customer's blocked) that are in
 * stock and not blocked next to the order.
 */
static void
propose_complements(Proposal *p, const OrderBlocks *b, int64 tenant_id, const char *note)
{
	PairList   *lists = palloc0(sizeof(PairList) * Max(b->nitems, 1));
	int			total;
	IdNumbers	numbers;
	Complement *c;
	int			n;
	int64	   *ids;
	int			nread,
				kept = 0;
	int			i;

	if (b->nitems == 0)
		return;
	/* each of the order's products' pair list (a row by key) */
	total = (int) serving_pair_lists(tenant_id, b->items, b->nitems, lists);

	/* summed in one order: the order's products by id, each list in its order */
	serving_id_numbers_init(&numbers, total);
	c = palloc(sizeof(Complement) * Max(total, 1));
	for (i = 0; i < b->nitems; i++)
		for (int j = 0; j < lists[i].n; j++)
		{
			int64		id;
			double		x;
			bool		added;
			int			k;

			if (lists[i].others_null[j])
				continue;
			id = DatumGetInt64(lists[i].others[j]);
			if (serving_sorted_contains(b->items, b->nitems, id) ||
				serving_sorted_contains(b->owned, b->nowned, id))
				continue;
			/* (LEAST skips a NULL, and takes a NaN for the greater) */
			x = lists[i].scores_null[j] ? MOST_LIKELY : DatumGetFloat8(lists[i].scores[j]);
			if (isnan(x) || x > MOST_LIKELY)
				x = MOST_LIKELY;
			k = serving_id_number(&numbers, id, &added);
			if (added)
			{
				c[k].id = id;
				c[k].log_miss = 0;
			}
			c[k].log_miss += log(1.0 - x);
		}
	n = numbers.n;
	for (i = 0; i < n; i++)
		c[i].score = 1 - exp(c[i].log_miss);
	qsort(c, n, sizeof(Complement), cmp_complement);

	/*
	 * Read COMPLEMENTS_READ at a time, until COMPLEMENTS_KEPT are kept: a
	 * candidate out of stock is passed over here, not cut by the merge after
	 * the best 24 were taken (bestsellers then took the slots of the
	 * complements further down the list).
	 */
	ids = palloc(sizeof(int64) * Max(n, 1));
	for (i = 0; i < n; i++)
		ids[i] = c[i].id;
	for (int from = 0; from < n && kept < COMPLEMENTS_KEPT; from += nread)
	{
		nread = Min(n - from, COMPLEMENTS_READ);
		serving_cache_facts(tenant_id, ids + from, nread);
		for (i = from; i < from + nread && kept < COMPLEMENTS_KEPT; i++)
		{
			const CatalogFacts *f = serving_cached_facts(tenant_id, ids[i]);

			if (!f->in_stock || blocked_next_to_order(b, ids[i], f->category, f->variant_group))
				continue;
			serving_propose(p, OFFER_COMPLEMENT, &ids[i], 1, c[i].score, serving_zero_discount(),
							noted("goes with your order", note));
			kept++;
		}
	}
}

/*
 * Bestsellers in stock, by popularity rank: the first POPULAR_KEPT that are
 * not the order's, not the customer's blocked, not blocked next to the
 * order.  The tenant's first are in the rules' cache; the next are read a
 * batch at a time.
 */
static void
propose_popular(Proposal *p, const OrderBlocks *b, int64 tenant_id, const char *note)
{
	const TenantRules *r = b->rules;
	int			kept = 0;
	int64		after = 0;

	serving_cache_facts(tenant_id, r->popular, r->npopular);
	for (int i = 0; i < r->npopular && kept < POPULAR_KEPT; i++)
	{
		int64	   *id = (int64 *) &r->popular[i];
		const CatalogFacts *f = serving_cached_facts(tenant_id, *id);

		after = r->popular_rank[i];
		if (serving_sorted_contains(b->items, b->nitems, *id) ||
			serving_sorted_contains(b->owned, b->nowned, *id) ||
			blocked_next_to_order(b, *id, f->category, f->variant_group))
			continue;
		serving_propose(p, OFFER_COMPLEMENT, id, 1, 1e-6 / (double) r->popular_rank[i], serving_zero_discount(),
						noted("popular", note));
		kept++;
	}
	if (r->npopular < POPULAR)
		return;
	while (kept < POPULAR_KEPT)
	{
		Datum		args[3];
		uint64		n;

		CHECK_FOR_INTERRUPTS();
		args[0] = Int64GetDatum(tenant_id);
		args[1] = Int64GetDatum(after);
		args[2] = Int32GetDatum(POPULAR_BATCH);
		n = serving_run(serving.popular_after, args, NULL);
		for (uint64 i = 0; i < n && kept < POPULAR_KEPT; i++)
		{
			bool		isnull;
			int64	   *id = palloc(sizeof(int64));

			*id = DatumGetInt64(serving_col(i, 1, &isnull));
			after = DatumGetInt64(serving_col(i, 2, &isnull));
			if (serving_sorted_contains(b->items, b->nitems, *id) ||
				serving_sorted_contains(b->owned, b->nowned, *id) ||
				blocked_next_to_order(b, *id, serving_col_text(i, 3), serving_col_text(i, 4)))
				continue;
			serving_propose(p, OFFER_COMPLEMENT, id, 1, 1e-6 / (double) after, serving_zero_discount(),
							noted("popular", note));
			kept++;
		}
		if (n < POPULAR_BATCH)
			break;
	}
}

/*
 * post_purchase_offers(order_items bigint[], customer_id bigint,
 *		tenant_id bigint, experiment text, unit_id text, at timestamptz)
 * RETURNS SETOF upsell.offer
 */
Datum
upsell_post_purchase_offers(PG_FUNCTION_ARGS)
{
	ArrayType  *order_arr = PG_ARGISNULL(0) ? NULL : PG_GETARG_ARRAYTYPE_P(0);
	bool		at_null = PG_ARGISNULL(5);
	TimestampTz at = at_null ? 0 : PG_GETARG_TIMESTAMPTZ(5);
	Datum	   *elems = NULL;
	bool	   *elem_nulls = NULL;
	int			nelems = 0;
	int64	   *items;
	int			nitems = 0;
	ServingVersion version;
	int64		tenant_id;
	TenantRules *r;
	uint32		allowed;
	OrderBlocks b;
	CustomerOwned owned = {0};
	int64	   *owned_blocked;
	int			nowned_blocked = 0;
	int			unknown = 0;
	char	   *note = NULL;
	OwnedOffer *offers;
	int			noffers;
	Proposal	p;
	int64	   *proposed;
	char	  **categories;
	int			ncategories = 0;
	int			i,
				j;

	version = serving_begin_request(fcinfo);
	tenant_id = serving_resolve_tenant(PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2));
	if (order_arr && ARR_NDIM(order_arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("order_items must be a one-dimensional array of product ids")));
	if (order_arr && ArrayGetNItems(ARR_NDIM(order_arr), ARR_DIMS(order_arr)) > upsell_max_cart_lines)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the cart has %d lines, more than upsell.max_cart_lines (%d)",
						ArrayGetNItems(ARR_NDIM(order_arr), ARR_DIMS(order_arr)), upsell_max_cart_lines)));
	if (order_arr)
		deconstruct_array(order_arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, &elem_nulls, &nelems);
	items = palloc(sizeof(int64) * Max(nelems, 1));
	for (i = 0; i < nelems; i++)
	{
		if (elem_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("the order contains a NULL product id")));
		items[nitems++] = DatumGetInt64(elems[i]);
	}
	nitems = serving_sort_unique(items, nitems);
	allowed = serving_allowed_types(serving_opt_text(fcinfo, 3), serving_opt_text(fcinfo, 4),
									STAGE_POST_PURCHASE, tenant_id);
	r = serving_tenant_rules(tenant_id);
	serving_begin_facts(version);

	/*
	 * What the customer owns, by the rule every stage applies: a durable is
	 * never offered again, a consumable only when due within two weeks
	 */
	if (!PG_ARGISNULL(1))
		owned = serving_customer_owned(tenant_id, PG_GETARG_INT64(1), at_null,
									   at_null ? 0 : serving_restock_horizon(at), false);
	owned_blocked = palloc(sizeof(int64) * Max(owned.n, 1));
	for (i = 0; i < owned.n; i++)
		if (!owned.products[i].blocked_null && owned.products[i].blocked)
			owned_blocked[nowned_blocked++] = owned.products[i].product_id;

	/*
	 * The order's products: a product the models do not know (added since
	 * the last refresh) has no complements, and the offers say so, as the
	 * cart's do
	 */
	serving_cache_facts(tenant_id, items, nitems);
	categories = palloc(sizeof(char *) * Max(nitems, 1));
	for (i = 0; i < nitems; i++)
	{
		const CatalogFacts *f = serving_cached_facts(tenant_id, items[i]);

		if (!f->known)
			unknown++;
		else if (f->category != NULL && !listed(f->category, (const char **) categories, ncategories))
			categories[ncategories++] = (char *) f->category;
	}
	if (unknown > 0)
		note = psprintf("%d of the order's products unknown as of the last refresh", unknown);
	b.rules = r;
	b.items = items;
	b.nitems = nitems;
	b.owned = owned_blocked;
	b.nowned = nowned_blocked;
	order_substitutes(&b, tenant_id, categories, ncategories);

	serving_proposal_init(&p, 32);
	propose_complements(&p, &b, tenant_id, note);
	propose_popular(&p, &b, tenant_id, note);
	/* restocks and a subscription pitch, of what the customer owns */
	offers = serving_owned_offers(&owned, at_null, at, &noffers);
	for (i = 0; i < noffers; i++)
		serving_propose(&p, offers[i].type, &offers[i].product_id, 1, offers[i].score, serving_zero_discount(),
						noted(offers[i].reason, note));

	/* the candidates' stock (each offers one product) */
	proposed = palloc(sizeof(int64) * Max(p.n, 1));
	for (i = 0; i < p.n; i++)
		proposed[i] = p.c[i].ids[0];
	serving_cache_facts(tenant_id, proposed, p.n);
	for (i = 0; i < p.n; i++)
		for (j = 0; j < p.c[i].nids; j++)
			if (!serving_cached_facts(tenant_id, p.c[i].ids[j])->in_stock)
				p.c[i].showable = false;
	/* the merchant's offers for the order (by its products or categories) */
	serving_propose_pinned(&p, r, STAGE_POST_PURCHASE, items, nitems, categories, ncategories, NULL,
						   at_null ? GetCurrentTransactionStartTimestamp() : at);
	serving_emit(fcinfo, &p, r, STAGE_POST_PURCHASE, allowed, items, nitems);
	serving_end_request();
	PG_RETURN_NULL();
}
