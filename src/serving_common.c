/*
 * serving_common.c
 *		The extension's schema and the saved SPI plans of the funnel stages,
 *		the start and end of a request, and the small helpers they share.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "serving.h"
#include "upsell.h"

const char *const serving_stage_names[NSTAGES] = {"product_page", "cart", "post_purchase"};

ServingSchema serving;

/*
 * SPI is connected on first use in a request: a cart whose rules are
 * cached needs none.  Requests do not nest, and one that failed left its
 * connection to the abort's clean-up; serving_begin_request starts afresh.
 */
static bool spi_connected;
static int	spi_guc_level;

void
serving_use_spi(void)
{
	if (spi_connected)
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	spi_guc_level = upsell_pin_search_path();
	spi_connected = true;
}

/* The schema-qualified form of a query: every "@." names the extension's schema. */
char *
serving_qualify(const char *query)
{
	StringInfoData buf;
	const char *p;

	initStringInfo(&buf);
	for (p = query; *p; p++)
	{
		if (p[0] == '@' && p[1] == '.')
		{
			appendStringInfo(&buf, "%s.", serving.nspname);
			p++;
		}
		else
			appendStringInfoChar(&buf, *p);
	}
	return buf.data;
}

static SPIPlanPtr
serving_prepare_plan(const char *query, int nargs, Oid *argtypes)
{
	/*
	 * Generic plans only: the lookups are by key, and a custom plan would
	 * cost a planning per request whenever the planner guesses the generic
	 * one dearer (as it may for "= ANY ($2)").
	 */
	SPIPlanPtr	plan = SPI_prepare_cursor(serving_qualify(query), nargs, argtypes,
										  CURSOR_OPT_GENERIC_PLAN);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", query, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

static void
serving_forget_plan(SPIPlanPtr *plan)
{
	if (*plan)
		SPI_freeplan(*plan);
	*plan = NULL;
}

/* Plans of the schema fn_oid lives in (the extension's); call connected. */
static void
serving_use_schema(Oid fn_oid)
{
	Oid			nsp = get_func_namespace(fn_oid);
	Oid			int8_2[2] = {INT8OID, INT8OID};
	Oid			by_ids[2] = {INT8OID, INT8ARRAYOID};
	Oid			variant[4] = {TEXTOID, TEXTOID, TEXTOID, INT8OID};
	Oid			after[3] = {INT8OID, INT8OID, INT4OID};
	Oid			rules[3] = {INT8OID, INT8ARRAYOID, TEXTARRAYOID};
	Oid			category_limit[3] = {INT8OID, TEXTOID, INT8OID};
	Oid			limit[2] = {INT8OID, INT8OID};
	Oid			by_categories[2] = {INT8OID, TEXTARRAYOID};
	Oid			group_price[4] = {INT8OID, TEXTOID, NUMERICOID, INT8OID};

	if (serving.nsp == nsp && serving.page_list != NULL)
		return;
	serving_use_spi();
	serving_forget_plan(&serving.page_product);
	serving_forget_plan(&serving.page_list);
	serving_forget_plan(&serving.page_bundles);
	serving_forget_plan(&serving.in_stock);
	serving_forget_plan(&serving.categories);
	serving_forget_plan(&serving.variant);
	serving_forget_plan(&serving.tier_products);
	serving_forget_plan(&serving.popular_after);
	serving_forget_plan(&serving.owned_history);
	serving_forget_plan(&serving.owned_catalog);
	serving_forget_plan(&serving.owned_intervals);
	serving_forget_plan(&serving.owned_has_rules);
	serving_forget_plan(&serving.owned_rules);
	serving_forget_plan(&serving.shop_zone);
	serving_forget_plan(&serving.pair_lists);
	serving_forget_plan(&serving.substitute_categories);
	serving_forget_plan(&serving.group_upgrades);
	serving_forget_plan(&serving.customer_orders);
	serving_forget_plan(&serving.category_bestsellers);
	serving_forget_plan(&serving.bestsellers);
	if (serving.nspname)
		pfree(serving.nspname);
	serving.nsp = InvalidOid;
	serving.nspname = MemoryContextStrdup(TopMemoryContext,
										  quote_identifier(get_namespace_name(nsp)));

	serving.page_product = serving_prepare_plan(
		"SELECT m.category FROM @.product_model m "
		"WHERE m.product_id" EQ "$2 AND m.tenant_id" EQ "$1", 2, int8_2);
	/*
	 * the product page's stored offers, and the product's bundles, whose
	 * items' stock serving.in_stock reads (serving_page.c): a row of one
	 * table each by its key, as Citus routes a prepared statement's
	 * parameters to the tenant's shard
	 */
	serving.page_list = serving_prepare_plan(
		"SELECT p.offer_types, p.product_ids, p.offer_ends, p.scores, p.discounts, p.reasons "
		"FROM @.product_page_list_model p WHERE p.tenant_id" EQ "$1 AND p.product_id" EQ "$2", 2, int8_2);
	serving.page_bundles = serving_prepare_plan(
		"SELECT b.items, b.item_ends, b.counts, b.lifts "
		"FROM @.bundle_list_model b WHERE b.tenant_id" EQ "$1 AND b.product_id" EQ "$2", 2, int8_2);
	serving.in_stock = serving_prepare_plan(
		"SELECT m.product_id FROM @.product_model m "
		"WHERE m.tenant_id" EQ "$1 AND m.product_id" EQ "ANY ($2) AND m.in_stock", 2, by_ids);
	serving.categories = serving_prepare_plan(
		"SELECT DISTINCT m.category FROM @.product_model m "
		"WHERE m.tenant_id" EQ "$1 AND m.product_id" EQ "ANY ($2) AND m.category IS NOT NULL", 2, by_ids);
	serving.variant = serving_prepare_plan("SELECT @.variant_offer_types($1, $2, $3, $4)", 4, variant);
	/* what prices a cart line with volume tiers (serving_tiers.c) */
	serving.tier_products = serving_prepare_plan(
		"SELECT m.product_id, m.price, m.category, m.in_stock FROM @.product_model m "
		"WHERE m.tenant_id" EQ "$1 AND m.product_id" EQ "ANY ($2) "
		"  AND m.price OPERATOR(pg_catalog.>) 0::pg_catalog.numeric", 2, by_ids);
	/* (numbered along an index, as load_popular's: the scan stops at the limit) */
	serving.popular_after = serving_prepare_plan(
		"SELECT p.product_id, p.popularity_rank, p.category, p.variant_group FROM @.product_popularity p "
		"WHERE p.tenant_id" EQ "$1 AND p.in_stock AND p.popularity_rank OPERATOR(pg_catalog.>) $2 "
		"LIMIT $3", 3, after);
	/* (the history's arrays are sorted by product id) */
	serving.owned_history = serving_prepare_plan(
		"SELECT h.product_ids, h.purchases, h.last_at, h.median_gap_days, h.cv "
		"FROM @.purchase_history_model h WHERE h.tenant_id" EQ "$1 AND h.customer_id" EQ "$2", 2, int8_2);
	serving.owned_catalog = serving_prepare_plan(
		"SELECT m.product_id, m.category, m.in_stock, m.variant_group, m.price, m.title FROM @.product_model m "
		"WHERE m.tenant_id" EQ "$1 AND m.product_id" EQ "ANY ($2)", 2, by_ids);
	serving.owned_intervals = serving_prepare_plan(
		"SELECT pm.product_id, pm.population_interval_days, pm.repeat_share, pm.repeats_consumable "
		"FROM @.product_interval_model pm WHERE pm.tenant_id" EQ "$1 AND pm.product_id" EQ "ANY ($2)",
		2, by_ids);
	serving.owned_has_rules = serving_prepare_plan(
		"SELECT EXISTS (SELECT FROM @.consumables c WHERE c.tenant_id" EQ "$1)", 1, int8_2);
	serving.owned_rules = serving_prepare_plan(
		"SELECT c.product_id, c.category, c.consumable FROM @.consumables c "
		"WHERE c.tenant_id" EQ "$1 AND (c.product_id" EQ "ANY ($2) OR c.category" EQ "ANY ($3))", 3, rules);
	/*
	 * _shop_zone()'s query, run here: calling the PL/pgSQL function, with
	 * its search_path set and reset, took 0.05-0.4 ms of a request
	 */
	serving.shop_zone = serving_prepare_plan(
		"SELECT COALESCE((SELECT s.time_zone FROM @.order_source s LIMIT 1), "
		"pg_catalog.current_setting('TimeZone'))", 0, NULL);
	/* the categories that substitute some (serving_post_purchase.c) */
	serving.substitute_categories = serving_prepare_plan(
		"SELECT s.other_category FROM @.category_model s "
		"WHERE s.tenant_id" EQ "$1 AND s.substitutes AND s.category" EQ "ANY ($2)", 2, by_categories);
	/* some products' pair lists (the thank-you page, a customer's recommendations) */
	serving.pair_lists = serving_prepare_plan(
		"SELECT l.product_id, l.other_ids, l.score FROM @.pair_list_model l "
		"WHERE l.tenant_id" EQ "$1 AND l.product_id" EQ "ANY ($2)", 2, by_ids);
	/* the step up from a durable (serving_email.c) */
	serving.group_upgrades = serving_prepare_plan(
		"SELECT m.product_id FROM @.product_model m "
		"WHERE m.tenant_id" EQ "$1 AND m.variant_group" EQ "$2 AND m.price OPERATOR(pg_catalog.>) $3 "
		"  AND m.in_stock ORDER BY m.price, m.orders DESC, m.product_id LIMIT $4", 4, group_price);
	/* a customer's recommendations (serving_customer.c) */
	serving.customer_orders = serving_prepare_plan(
		"SELECT GREATEST(pg_catalog.max(cm.orders), 1)::pg_catalog.float8 "
		"FROM @.cooccurrence_model cm WHERE cm.tenant_id" EQ "$1", 1, int8_2);
	serving.category_bestsellers = serving_prepare_plan(
		"SELECT m.product_id, m.orders FROM @.product_model m "
		"WHERE m.tenant_id" EQ "$1 AND m.category" EQ "$2 AND m.in_stock "
		"ORDER BY m.orders DESC, m.product_id LIMIT $3", 3, category_limit);
	serving.bestsellers = serving_prepare_plan(
		"SELECT m.product_id, m.orders FROM @.product_model m "
		"WHERE m.tenant_id" EQ "$1 AND m.in_stock "
		"ORDER BY m.orders DESC, m.product_id LIMIT $2", 2, limit);
	serving.nsp = nsp;
}

/* Runs a saved plan read-only; the rows are in SPI_tuptable. */
uint64
serving_run(SPIPlanPtr plan, Datum *args, const char *nulls)
{
	int			rc;

	serving_use_spi();
	rc = SPI_execute_plan(plan, args, nulls, true, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

Datum
serving_col(int row, int column, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column, isnull);
}

char *
serving_col_text(int row, int column)
{
	bool		isnull;
	Datum		d = serving_col(row, column, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* int64s ascending (also pairs or rows led by one) */
int
serving_cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* Sorts and removes repeats; returns the new length. */
int
serving_sort_unique(int64 *a, int n)
{
	int			i,
				j = 0;

	if (n <= 1)
		return n;
	qsort(a, n, sizeof(int64), serving_cmp_int64);
	for (i = 1; i < n; i++)
		if (a[i] != a[j])
			a[++j] = a[i];
	return j + 1;
}

/* The index of x in a, sorted as serving_sort_unique leaves it; -1: absent. */
int
serving_sorted_index(const int64 *a, int n, int64 x)
{
	const int64 *at = n > 0 ? bsearch(&x, a, n, sizeof(int64), serving_cmp_int64) : NULL;

	return at ? (int) (at - a) : -1;
}

/* Whether x is in a, sorted as serving_sort_unique leaves it. */
bool
serving_sorted_contains(const int64 *a, int n, int64 x)
{
	return serving_sorted_index(a, n, x) >= 0;
}

bool
serving_numeric_at_most(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b))) <= 0;
}

/* Raises unless the time a request is asked at is finite. */
void
serving_check_finite_at(TimestampTz at)
{
	if (TIMESTAMP_NOT_FINITE(at))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_FIELD_OVERFLOW),
				 errmsg("at must be a finite time, not %s",
						DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum(at))))));
}

/* round(x::numeric, places) as text: how the reasons print days */
char *
serving_rounded_text(double x, int places)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out,
											   DirectFunctionCall2(numeric_round,
																   DirectFunctionCall1(float8_numeric, Float8GetDatum(x)),
																   Int32GetDatum(places))));
}

/* to_char(t AT TIME ZONE zone, 'YYYY-MM-DD'): the shop's day of an instant */
char *
serving_shop_day(const char *zone, TimestampTz t)
{
	Datum		local = DirectFunctionCall2(timestamptz_zone, CStringGetTextDatum(zone),
											TimestampTzGetDatum(t));

	return TextDatumGetCString(DirectFunctionCall2(timestamp_to_char, local,
												   CStringGetTextDatum("YYYY-MM-DD")));
}

void
serving_id_numbers_init(IdNumbers *t, int most)
{
	t->size = 16;
	while (t->size < 2 * most)
		t->size *= 2;
	t->ids = palloc(sizeof(int64) * (t->size / 2));
	t->keys = palloc(sizeof(int64) * t->size);
	t->numbers = palloc(sizeof(int) * t->size);
	memset(t->numbers, -1, sizeof(int) * t->size);
	t->n = 0;
}

/*
 * The pair lists of distinct products, in one query by key, into lists (of
 * n, zeroed) at the products' positions in ids; returns how many pairs in
 * all.  A product without a list keeps n 0.
 */
int64
serving_pair_lists(int64 tenant_id, const int64 *ids, int n, PairList *lists)
{
	int64	   *positions = palloc(sizeof(int64) * 2 * Max(n, 1));	/* (id, position) by id */
	int64		total = 0;
	Datum		args[2];
	uint64		rows,
				r;
	int			i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
	{
		positions[2 * i] = ids[i];
		positions[2 * i + 1] = i;
	}
	qsort(positions, n, sizeof(int64) * 2, serving_cmp_int64);
	args[0] = Int64GetDatum(tenant_id);
	args[1] = PointerGetDatum(upsell_int8_array(ids, n));
	rows = serving_run(serving.pair_lists, args, NULL);
	for (r = 0; r < rows; r++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(serving_col((int) r, 1, &isnull));
		const int64 *found = bsearch(&id, positions, n, sizeof(int64) * 2, serving_cmp_int64);
		PairList   *l;
		int			nscores;

		if (found == NULL || lists[found[1]].n > 0)
			continue;
		l = &lists[found[1]];
		upsell_deconstruct(DatumGetArrayTypeP(serving_col((int) r, 2, &isnull)), INT8OID,
						   &l->others, &l->others_null, &l->n);
		upsell_deconstruct(DatumGetArrayTypeP(serving_col((int) r, 3, &isnull)), FLOAT8OID,
						   &l->scores, &l->scores_null, &nscores);
		if (nscores != l->n)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the pair list of product " INT64_FORMAT " of tenant " INT64_FORMAT " is malformed",
							id, tenant_id),
					 errdetail("Its arrays differ in length."),
					 errhint("Refresh the tenant's models: CALL upsell.refresh(tenant_id => " INT64_FORMAT ").",
							 tenant_id)));
		total += l->n;
	}
	pfree(positions);
	return total;
}

/* The number of id, given now if it has none (*added: whether it did). */
int
serving_id_number(IdNumbers *t, int64 id, bool *added)
{
	uint32		h = (uint32) (((uint64) id * UINT64CONST(0x9E3779B97F4A7C15)) >> 32) & (t->size - 1);

	while (t->numbers[h] >= 0 && t->keys[h] != id)
		h = (h + 1) & (t->size - 1);
	*added = t->numbers[h] < 0;
	if (*added)
	{
		/* (more ids than the table was sized for is the caller's error) */
		if (t->n >= t->size / 2)
			elog(ERROR, "more ids than the table of %d was sized for", t->size / 2);
		t->keys[h] = id;
		t->ids[t->n] = id;
		t->numbers[h] = t->n++;
	}
	return t->numbers[h];
}

Stage
serving_stage_of(const char *name)
{
	int			s;

	for (s = 0; s < NSTAGES; s++)
		if (strcmp(name, serving_stage_names[s]) == 0)
			return (Stage) s;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown funnel stage \"%s\"", name),
			 errhint("The stages are product_page, cart and post_purchase.")));
	return STAGE_CART;			/* keep the compiler quiet */
}

/*
 * The start of a request without the cache key: the SRF's result and the
 * plans.  The caller checks the key (serving_check_version) before it
 * reads the rules.
 */
void
serving_begin_request_unchecked(FunctionCallInfo fcinfo)
{
	spi_connected = false;
	InitMaterializedSRF(fcinfo, 0);
	serving_use_schema(fcinfo->flinfo->fn_oid);
}

/*
 * The start of a lookup that is not a stage's request (no SRF, no rules):
 * the plans of the extension's schema, SPI connected.  Ends with
 * serving_end_request, as a request does.
 */
void
serving_begin_call(FunctionCallInfo fcinfo)
{
	spi_connected = false;
	serving_use_schema(fcinfo->flinfo->fn_oid);
}

/* The start of every stage's request: the SRF's result, the cache key. */
ServingVersion
serving_begin_request(FunctionCallInfo fcinfo)
{
	serving_begin_request_unchecked(fcinfo);
	return serving_check_version();
}

void
serving_end_request(void)
{
	if (spi_connected)
	{
		upsell_unpin_search_path(spi_guc_level);
		SPI_finish();
	}
	spi_connected = false;
}

/*
 * A per-backend cache emptied: its memory context, made on first use under
 * TopMemoryContext, reset, and a new hash table of entries in it.
 */
HTAB *
serving_cache_table(MemoryContext *cxt, const char *name, Size keysize, Size entrysize, long nelem)
{
	HASHCTL		ctl;

	if (*cxt == NULL)
	{
		*cxt = AllocSetContextCreate(TopMemoryContext, "upsell serving cache", ALLOCSET_DEFAULT_SIZES);
		/* (name: a constant of the caller's) */
		MemoryContextSetIdentifier(*cxt, name);
	}
	else
		MemoryContextReset(*cxt);
	ctl.keysize = keysize;
	ctl.entrysize = entrysize;
	ctl.hcxt = *cxt;
	return hash_create(name, nelem, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* Runs a query of the rules loader with the tenant as $1. */
uint64
serving_tenant_query(const char *query, int64 tenant_id)
{
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(tenant_id)};
	int			rc;

	serving_use_spi();
	rc = SPI_execute_with_args(serving_qualify(query), 1, types, args, NULL, true, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}
