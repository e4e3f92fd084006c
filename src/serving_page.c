/*
 * serving_page.c
 *		The product page stage, _product_page_offers: the page's stored
 *		offers (one row of product_page_list_model) with the merchant's rules.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "serving.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_product_page_offers);
PG_FUNCTION_INFO_V1(upsell_product_page_offers_of);

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
page_malformed(int64 product_id)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("the product_page_list_model row of product " INT64_FORMAT " is malformed", product_id),
			 errhint("Run CALL upsell.refresh().")));
}

/*
 * Proposes the offers of the product's row of product_page_list_model (read
 * into SPI_tuptable): an element of each array per offer, its ids those of
 * product_ids up to its offer_end.
 */
static void
propose_stored(Proposal *p, int64 product_id)
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
	if (n_ends != n || n_scores != n || n_discounts != n || n_reasons != n)
		page_malformed(product_id);
	offered = palloc(Max(nids, 1) * sizeof(int64));
	for (int i = 0; i < nids; i++)
	{
		if (ids_null[i])
			page_malformed(product_id);
		offered[i] = DatumGetInt64(ids[i]);
	}
	for (int i = 0; i < n; i++)
	{
		int			t = types_null[i] ? -1 : offer_type_of(TextDatumGetCString(types[i]));
		int			end = ends_null[i] ? -1 : DatumGetInt32(ends[i]);

		if (t < 0 || t == OFFER_PINNED || end <= start || end > nids || scores_null[i] || discounts_null[i])
			page_malformed(product_id);
		serving_propose(p, (OfferType) t, &offered[start], end - start, DatumGetFloat8(scores[i]), discounts[i],
						reasons_null[i] ? NULL : TextDatumGetCString(reasons[i]));
		start = end;
	}
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
 * The page's stored offers (complements, upgrades, bundles; in stock as of
 * the refresh) with the pinned offers, exclusions and settings as of now,
 * for a product of product_model and its category; the request has begun.
 */
static void
page_offers(FunctionCallInfo fcinfo, int64 tenant_id, int64 product_id, char *category,
			text *experiment, text *unit_id)
{
	TenantRules *r;
	uint32		allowed;
	Proposal	p;
	Datum		args[2];
	CartLine   *lines;
	int			nlines;
	Substitutes subst;
	PagePopularSkip skip;

	allowed = serving_allowed_types(experiment, unit_id, STAGE_PRODUCT_PAGE, tenant_id);
	r = serving_tenant_rules(tenant_id);

	serving_proposal_init(&p, 16);
	serving_propose_pinned(&p, r, STAGE_PRODUCT_PAGE, &product_id, 1,
				   category ? &category : NULL, category ? 1 : 0, NULL, GetCurrentTransactionStartTimestamp());
	args[0] = Int64GetDatum(tenant_id);
	args[1] = Int64GetDatum(product_id);
	if (serving_run(serving.page_list, args, NULL) == 1)
		propose_stored(&p, product_id);

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
