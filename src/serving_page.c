/*
 * serving_page.c
 *		The product page stage, _product_page_offers: the page's offers (its
 *		row of product_page_list_model and the product's bundles) with the
 *		merchant's rules; and those offers alone, _product_page_list, which
 *		the view product_page_model reads.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "page_rank.h"
#include "serving.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_product_page_offers);
PG_FUNCTION_INFO_V1(upsell_product_page_offers_of);
PG_FUNCTION_INFO_V1(upsell_product_page_list);

/* The elements of a column of the page's row, an array (NULL: none). */
static void
page_column(int column, Oid type, Datum **elems, bool **nulls, int *n)
{
	bool		isnull;
	Datum		d = serving_col(0, column, &isnull);

	*elems = NULL;
	*nulls = NULL;
	*n = 0;
	if (!isnull)
		upsell_deconstruct(DatumGetArrayTypeP(d), type, elems, nulls, n);
}

static void
page_malformed(int64 product_id, const char *model)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("the %s row of product " INT64_FORMAT " is malformed", model, product_id),
			 errhint("Run CALL upsell.refresh().")));
}

/* One offer of the page, before the merchant's rules. */
typedef struct PageOffer
{
	OfferType	type;
	int64	   *ids;
	int			nids;
	double		score;
	double		sort;			/* relative to the best of its type */
	Datum		discount;		/* numeric */
	char	   *reason;			/* NULL: none */
} PageOffer;

/* a bundle on the product page is offered at 10% off */
#define PAGE_BUNDLE_DISCOUNT "0.10"

/*
 * The reason a bundle is offered: how often it was bought together, and its
 * lift rounded as numeric rounds (to one decimal, half away from zero).
 */
static char *
page_bundle_reason(int64 count, double lift)
{
	Datum		rounded = DirectFunctionCall2(numeric_round,
											  DirectFunctionCall1(float8_numeric, Float8GetDatum(lift)),
											  Int32GetDatum(1));

	return psprintf("bought together in " INT64_FORMAT " orders, %s times more often than by chance",
					count, DatumGetCString(DirectFunctionCall1(numeric_out, rounded)));
}

/*
 * The stored offers of the product's row of product_page_list_model (read
 * into SPI_tuptable), complements and upgrades: an element of each array
 * per offer, its ids those of product_ids up to its offer_end.
 */
static int
page_stored(int64 product_id, PageOffer *out)
{
	Datum	   *types,
			   *ids,
			   *ends,
			   *scores,
			   *discounts,
			   *reasons;
	bool	   *types_null,
			   *ids_null,
			   *ends_null,
			   *scores_null,
			   *discounts_null,
			   *reasons_null;
	int			n,
				nids,
				n_ends,
				n_scores,
				n_discounts,
				n_reasons;
	int64	   *offered;
	int			start = 0;

	page_column(1, TEXTOID, &types, &types_null, &n);
	page_column(2, INT8OID, &ids, &ids_null, &nids);
	page_column(3, INT4OID, &ends, &ends_null, &n_ends);
	page_column(4, FLOAT8OID, &scores, &scores_null, &n_scores);
	page_column(5, NUMERICOID, &discounts, &discounts_null, &n_discounts);
	page_column(6, TEXTOID, &reasons, &reasons_null, &n_reasons);
	if (n_ends != n || n_scores != n || n_discounts != n || n_reasons != n || n > PAGE_OFFERS)
		page_malformed(product_id, "product_page_list_model");
	offered = palloc(Max(nids, 1) * sizeof(int64));
	for (int i = 0; i < nids; i++)
	{
		if (ids_null[i])
			page_malformed(product_id, "product_page_list_model");
		offered[i] = DatumGetInt64(ids[i]);
	}
	for (int i = 0; i < n; i++)
	{
		int			t = types_null[i] ? -1 : offer_type_of(TextDatumGetCString(types[i]));
		int			end = ends_null[i] ? -1 : DatumGetInt32(ends[i]);

		if ((t != OFFER_COMPLEMENT && t != OFFER_UPGRADE) || end <= start || end > nids ||
			scores_null[i] || discounts_null[i])
			page_malformed(product_id, "product_page_list_model");
		out[i].type = (OfferType) t;
		out[i].ids = &offered[start];
		out[i].nids = end - start;
		out[i].score = DatumGetFloat8(scores[i]);
		out[i].discount = discounts[i];
		out[i].reason = reasons_null[i] ? NULL : TextDatumGetCString(reasons[i]);
		start = end;
	}
	return n;
}

/*
 * The product's bundles with every item in stock (its row of
 * bundle_list_model, the items' stock in product_model), into *out;
 * returns how many.
 */
static int
page_bundles(int64 tenant_id, int64 product_id, PageOffer **out)
{
	Datum		args[2];
	Datum		items_array;
	Datum	   *items,
			   *ends,
			   *counts,
			   *lifts;
	bool	   *items_null,
			   *ends_null,
			   *counts_null,
			   *lifts_null;
	bool		isnull;
	int			nitems,
				n,
				ncounts,
				nlifts,
				k = 0,
				from = 0;
	int64	   *stocked;
	uint64		nstocked;
	Datum		discount = (Datum) 0;

	*out = NULL;
	args[0] = Int64GetDatum(tenant_id);
	args[1] = Int64GetDatum(product_id);
	if (serving_run(serving.page_bundles, args, NULL) != 1)
		return 0;
	items_array = serving_col(0, 1, &isnull);
	page_column(1, INT8OID, &items, &items_null, &nitems);
	page_column(2, INT4OID, &ends, &ends_null, &n);
	page_column(3, INT8OID, &counts, &counts_null, &ncounts);
	page_column(4, FLOAT8OID, &lifts, &lifts_null, &nlifts);
	if (isnull || ncounts != n || nlifts != n)
		page_malformed(product_id, "bundle_list_model");
	/* which items are in stock (the bundle's row read: the next read replaces it) */
	args[1] = items_array;
	nstocked = serving_run(serving.in_stock, args, NULL);
	stocked = palloc(Max(nstocked, 1) * sizeof(int64));
	for (uint64 s = 0; s < nstocked; s++)
		stocked[s] = DatumGetInt64(serving_col((int) s, 1, &isnull));
	*out = palloc(Max(n, 1) * sizeof(PageOffer));
	for (int b = 0; b < n; b++)
	{
		int			to = ends_null[b] ? -1 : DatumGetInt32(ends[b]);
		bool		offerable = true;

		if (to < from || to > nitems || counts_null[b] || lifts_null[b])
			page_malformed(product_id, "bundle_list_model");
		for (int i = from; i < to && offerable; i++)
		{
			bool		in_stock = false;

			for (uint64 s = 0; s < nstocked && !in_stock && !items_null[i]; s++)
				in_stock = stocked[s] == DatumGetInt64(items[i]);
			offerable = in_stock;
		}
		if (offerable)
		{
			PageOffer  *o = &(*out)[k++];

			if (discount == (Datum) 0)
				discount = DirectFunctionCall3(numeric_in, CStringGetDatum(PAGE_BUNDLE_DISCOUNT),
											   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
			o->type = OFFER_BUNDLE;
			o->nids = to - from;
			o->ids = palloc(Max(o->nids, 1) * sizeof(int64));
			for (int i = from; i < to; i++)
				o->ids[i - from] = DatumGetInt64(items[i]);
			o->score = DatumGetFloat8(lifts[b]);
			o->discount = discount;
			o->reason = page_bundle_reason(DatumGetInt64(counts[b]), o->score);
		}
		from = to;
	}
	return k;
}

/* The page's offers o[0 .. n) as candidates of its ranking, into c. */
static PageCandidate *
page_candidates(const PageOffer *o, int n, PageCandidate *c)
{
	for (int i = 0; i < n; i++)
	{
		c[i].kind = o[i].type == OFFER_BUNDLE ? PAGE_BUNDLE
			: o[i].type == OFFER_UPGRADE ? PAGE_UPGRADE : PAGE_COMPLEMENT;
		c[i].ids = o[i].ids;
		c[i].nids = o[i].nids;
		c[i].score = o[i].score;
		c[i].ref = i;
	}
	return c;
}

/*
 * The product page's offers before the merchant's rules, best first: the
 * complements and upgrades a refresh ranked and stored (at most the 12
 * best), and the product's bundles with every item in stock, ranked
 * together by the rule the refresh ranks by (src/core/page_rank.h), the
 * 12 best.  The same 12 as ranking every offer at once: no bundle is the
 * same set of products as a complement or an upgrade (a bundle holds the
 * product itself), and an offer among the 12 best of all is among the 12
 * best without the bundles.  The bundles are not stored with the others
 * because every refresh with new orders changes every bundle's lift: the
 * lists of some 60,000 of 100,000 products were ranked again and written
 * at the end of each incremental refresh, after the bundles.  Returns how
 * many; the request has begun.
 */
static int
page_offers_ranked(int64 tenant_id, int64 product_id, PageOffer **offers)
{
	Datum		args[2];
	PageOffer  *o,
			   *bundles;
	PageCandidate *c;
	int			nstored = 0,
				nbundles,
				n,
				k;

	o = palloc(PAGE_OFFERS * sizeof(PageOffer));
	args[0] = Int64GetDatum(tenant_id);
	args[1] = Int64GetDatum(product_id);
	if (serving_run(serving.page_list, args, NULL) == 1)
		nstored = page_stored(product_id, o);
	nbundles = page_bundles(tenant_id, product_id, &bundles);
	n = nstored + nbundles;
	if (nbundles > 0)
	{
		o = repalloc(o, n * sizeof(PageOffer));
		memcpy(&o[nstored], bundles, nbundles * sizeof(PageOffer));
	}
	c = palloc(Max(n, 1) * sizeof(PageCandidate));
	k = page_rank(page_candidates(o, n, c), n, PAGE_OFFERS);
	if (k < 0)
	{
		/*
		 * Bundle lifts the rule cannot divide (a best of 0, a quotient out
		 * of range), which no refresh writes: the page keeps the stored
		 * offers, which the refresh ranked by the same rule.
		 */
		k = page_rank(page_candidates(o, nstored, c), nstored, PAGE_OFFERS);
		if (k < 0)
			page_malformed(product_id, "product_page_list_model");
	}
	*offers = palloc(Max(k, 1) * sizeof(PageOffer));
	for (int i = 0; i < k; i++)
	{
		(*offers)[i] = o[c[i].ref];
		(*offers)[i].sort = c[i].sort;
	}
	return k;
}

/*
 * What keeps a bestseller off the page: the product itself, a substitute of
 * it, and (without its cart_model row) its own category's products.
 */
typedef struct PagePopularSkip
{
	int64		product_id;
	const char *category;		/* NULL: none to skip */
	const Substitutes *subst;
} PagePopularSkip;

static bool
skip_popular(void *arg, int64 id, const char *category)
{
	PagePopularSkip *s = arg;

	return id == s->product_id || serving_is_substitute(s->subst, id, category) ||
		(s->category && category && strcmp(s->category, category) == 0);
}

/*
 * The page's offers (complements, upgrades, bundles; in stock as of the
 * refresh) with the pinned offers, exclusions and settings as of now,
 * for a product of product_model and its category; the request has begun.
 */
static void
page_offers(FunctionCallInfo fcinfo, int64 tenant_id, int64 product_id, char *category,
			text *experiment, text *unit_id)
{
	TenantRules *r;
	uint32		allowed;
	Proposal	p;
	PageOffer  *offers;
	int			noffers;
	CartLine   *lines;
	int			nlines;
	Substitutes subst;
	PagePopularSkip skip;

	allowed = serving_allowed_types(experiment, unit_id, STAGE_PRODUCT_PAGE, tenant_id);
	r = serving_tenant_rules(tenant_id);

	serving_proposal_init(&p, 16);
	serving_propose_pinned(&p, r, STAGE_PRODUCT_PAGE, &product_id, 1,
				   category ? &category : NULL, category ? 1 : 0, NULL, GetCurrentTransactionStartTimestamp());
	noffers = page_offers_ranked(tenant_id, product_id, &offers);
	for (int i = 0; i < noffers; i++)
		serving_propose(&p, offers[i].type, offers[i].ids, offers[i].nids, offers[i].score,
						offers[i].discount, offers[i].reason);

	/*
	 * Bestsellers fill the slots the evidence leaves (a product never or
	 * seldom bought with others, one added since the refresh), far below
	 * every stored offer, as in the cart: never the product itself nor a
	 * substitute of it (as its cart_model row says; without one, its own
	 * category's).
	 */
	lines = serving_read_cart_lines(tenant_id, &product_id, 1, &nlines);
	subst = serving_substitutes_of(lines, nlines);
	skip.product_id = product_id;
	skip.category = nlines == 0 ? category : NULL;
	skip.subst = &subst;
	serving_propose_popular(&p, r, STAGE_PRODUCT_PAGE, &product_id, 1, skip_popular, &skip);
	serving_emit(fcinfo, &p, r, STAGE_PRODUCT_PAGE, allowed, &product_id, 1);
}

/*
 * _product_page_offers(tenant_id bigint, product_id bigint, category text,
 *						experiment text DEFAULT NULL, unit_id text DEFAULT NULL)
 * RETURNS SETOF upsell.offer
 *
 * The view's: it has found the product and its category in product_model.
 */
Datum
upsell_product_page_offers(PG_FUNCTION_ARGS)
{
	int64		tenant_id;
	int64		product_id;
	char	   *category = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id and product_id must not be NULL")));
	tenant_id = PG_GETARG_INT64(0);
	serving_check_bound(tenant_id);
	product_id = PG_GETARG_INT64(1);
	serving_begin_request(fcinfo);
	page_offers(fcinfo, tenant_id, product_id, category,
				serving_opt_text(fcinfo, 3), serving_opt_text(fcinfo, 4));
	serving_end_request();
	PG_RETURN_NULL();
}

/*
 * _product_page_offers_of(tenant_id bigint, product_id bigint,
 *						   experiment text, unit_id text)
 * RETURNS SETOF upsell.offer
 *
 * product_page_offers()'s: the product's category is read here (one row of
 * product_model by its key), so that the SQL function reads no table.  On
 * Citus the call then runs on the tenant's worker, where this read goes to
 * the tenant's shard; a SQL function reading the distributed model there
 * is not planned by Citus.  A product not in product_model (added since
 * the refresh) gets the bestsellers, as a cart of it does.
 */
Datum
upsell_product_page_offers_of(PG_FUNCTION_ARGS)
{
	int64		tenant_id;
	int64		product_id;
	Datum		args[2];
	char	   *category;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id must not be NULL")));
	tenant_id = PG_GETARG_INT64(0);
	serving_begin_request_unchecked(fcinfo);
	if (PG_ARGISNULL(1))
	{
		serving_end_request();
		PG_RETURN_NULL();
	}
	product_id = PG_GETARG_INT64(1);
	args[0] = Int64GetDatum(tenant_id);
	args[1] = Int64GetDatum(product_id);
	category = serving_run(serving.page_product, args, NULL) == 0 ? NULL : serving_col_text(0, 1);
	serving_check_bound(tenant_id);
	serving_check_version();
	page_offers(fcinfo, tenant_id, product_id, category,
				serving_opt_text(fcinfo, 2), serving_opt_text(fcinfo, 3));
	serving_end_request();
	PG_RETURN_NULL();
}

/*
 * _product_page_list(tenant_id bigint, product_id bigint) RETURNS TABLE
 *	 (offer_type text, product_ids bigint[], sort float8, score float8,
 *	 discount numeric, reason text)
 *
 * The product page's offers before the merchant's rules, best first (its
 * stored complements and upgrades and its bundles, as the page ranks them):
 * the rows of the view product_page_model, for analysts.  As a view over
 * the models, it serves any tenant, bound session or not.
 */
Datum
upsell_product_page_list(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PageOffer  *offers;
	int			n;

	/* (STRICT) */
	serving_begin_request_unchecked(fcinfo);
	n = page_offers_ranked(PG_GETARG_INT64(0), PG_GETARG_INT64(1), &offers);
	for (int i = 0; i < n; i++)
	{
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};

		values[0] = CStringGetTextDatum(offer_type_names[offers[i].type]);
		values[1] = PointerGetDatum(upsell_int8_array(offers[i].ids, offers[i].nids));
		values[2] = Float8GetDatum(offers[i].sort);
		values[3] = Float8GetDatum(offers[i].score);
		values[4] = offers[i].discount;
		nulls[5] = offers[i].reason == NULL;
		values[5] = nulls[5] ? (Datum) 0 : CStringGetTextDatum(offers[i].reason);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	serving_end_request();
	PG_RETURN_NULL();
}
