/*
 * serving_page.c
 *		The product page stage, _product_page_offers: the page's stored
 *		offers (one read of product_page_model) with the merchant's rules.
 */
#include "postgres.h"

#include "utils/builtins.h"

#include "serving.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_product_page_offers);
PG_FUNCTION_INFO_V1(upsell_product_page_offers_of);

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
	uint64		n,
				k;

	allowed = serving_allowed_types(experiment, unit_id, STAGE_PRODUCT_PAGE);
	r = serving_tenant_rules(tenant_id);

	serving_proposal_init(&p, 16);
	serving_propose_pinned(&p, r, STAGE_PRODUCT_PAGE, &product_id, 1,
				   category ? &category : NULL, category ? 1 : 0, NULL);
	args[0] = Int64GetDatum(tenant_id);
	args[1] = Int64GetDatum(product_id);
	n = serving_run(serving.page_rows, args, NULL);
	for (k = 0; k < n; k++)
	{
		bool		isnull;
		char	   *type = serving_col_text(k, 1);
		int			t = type ? offer_type_of(type) : -1;
		int			nids;
		int64	   *ids = upsell_int8_elems(DatumGetArrayTypeP(serving_col(k, 2, &isnull)), &nids);
		double		score = DatumGetFloat8(serving_col(k, 3, &isnull));

		if (t < 0 || t == OFFER_PINNED || nids == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the product_page_model row of product " INT64_FORMAT " is malformed", product_id),
					 errhint("Run CALL upsell.refresh().")));
		serving_propose(&p, (OfferType) t, ids, nids, score, serving_col(k, 4, &isnull), serving_col_text(k, 5));
	}
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
 * is not planned by Citus.  No offers for a product not in product_model.
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
	if (serving_run(serving.page_product, args, NULL) == 0)
	{
		serving_end_request();
		PG_RETURN_NULL();
	}
	category = serving_col_text(0, 1);
	serving_check_bound(tenant_id);
	serving_check_version();
	page_offers(fcinfo, tenant_id, product_id, category,
				serving_opt_text(fcinfo, 2), serving_opt_text(fcinfo, 3));
	serving_end_request();
	PG_RETURN_NULL();
}
