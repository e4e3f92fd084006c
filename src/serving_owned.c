/*
 * serving_owned.c
 *		upsell._customer_owned(t, customer, due_by): what a customer owns, by
 *		product id, and the rule every serving function applies to it (a
 *		durable is never offered again, a consumable only when due by
 *		due_by).  The thank-you page, recommend_for_customer and the
 *		abandoned cart read it once a request.
 *
 * Why C, and a cache: until 1.11 this was a query of the view
 * purchase_interval_model joined per product to product_model,
 * product_interval_model and the consumable rule, about 15 us a product in
 * a warm session.  Recent orders are mostly the best customers': at 10M
 * order lines the customers of 200 recent orders owned 166 products on
 * average (3,513 at the 99th percentile), so the history took 4.5 ms of the
 * thank-you page's 5 ms.  The products' facts (category, population
 * interval, repeat share, the data's consumable verdict, stock, variant
 * group) change only when their tenant is refreshed (a new version of its
 * models in model_versions), so each backend keeps those it has read until
 * then (a change of the merchant's rules leaves them: serving_state's
 * version is the rules'); a
 * request reads the customer's history row, looks its products up in the
 * cache, and reads only the products missing from it.  The merchant's
 * consumable rules are read at every request (a rule takes effect at once,
 * without a refresh).  The stages in C look their candidates up in the same
 * cache (serving_cache_facts).
 *
 * The answer is the view's, element for element: interval_days, next_due and
 * confidence are computed as purchase_interval_model computes them (the
 * same functions for the dates: timezone(), interval_mul,
 * timestamp_pl_interval and _local_time in the shop's zone, _shop_zone).
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "serving.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_customer_owned);

/*
 * The cache is emptied once this many products (of every tenant) were
 * entered since it was: what a refresh of a tenant drops of its products
 * leaves their strings in the cache's memory until then.
 */
#define OWNED_CACHE_MAX		1000000

typedef struct FactsKey
{
	int64		tenant_id;
	int64		product_id;
} FactsKey;

/* A product's facts as of the refresh that drew the cache's version. */
typedef struct ProductFacts
{
	FactsKey	key;
	CatalogFacts catalog;		/* product_model's row */
	bool		has_interval;	/* a row in product_interval_model */
	bool		population_null;
	double		population_interval_days;
	bool		repeat_share_null;
	double		repeat_share;
	bool		repeats_consumable_null;
	bool		repeats_consumable;
} ProductFacts;

static struct
{
	MemoryContext cxt;
	HTAB	   *facts;
	bool		valid;
	Oid			nsp;
	Oid			state_rel;
	int64		models_version;
	TenantVersions tenant_versions; /* as of models_version */
	long		entered;		/* products entered since emptied */
} owned_cache;

/* The cache, emptied of what it holds of other models than these. */
static void
owned_cache_check(ServingVersion version)
{
	if (owned_cache.valid && owned_cache.nsp == serving.nsp &&
		owned_cache.state_rel == version.state_rel && owned_cache.entered < OWNED_CACHE_MAX)
	{
		if (owned_cache.models_version != version.models)
		{
			/* the products of the tenants refreshed since go, the others stay */
			owned_cache.valid = false;
			serving_forget_refreshed(owned_cache.facts, &owned_cache.tenant_versions, owned_cache.cxt, NULL);
			owned_cache.models_version = version.models;
			owned_cache.valid = true;
		}
		return;
	}
	owned_cache.valid = false;
	owned_cache.facts = serving_cache_table(&owned_cache.cxt, "upsell owned products", sizeof(FactsKey),
											sizeof(ProductFacts), 1024);
	owned_cache.nsp = serving.nsp;
	owned_cache.state_rel = version.state_rel;
	owned_cache.models_version = version.models;
	owned_cache.tenant_versions = serving_read_tenant_versions(owned_cache.cxt);
	owned_cache.entered = 0;
	owned_cache.valid = true;
}

/* Reads the facts of the products not cached yet into the cache. */
static void
owned_cache_fill(int64 tenant_id, const int64 *ids, int n)
{
	int64	   *missing = palloc(sizeof(int64) * Max(n, 1));
	int			nmissing = 0;
	Datum		args[2];
	uint64		rows,
				r;
	int			i;

	for (i = 0; i < n; i++)
	{
		FactsKey	key = {tenant_id, ids[i]};

		if (hash_search(owned_cache.facts, &key, HASH_FIND, NULL) == NULL)
			missing[nmissing++] = ids[i];
	}
	if (nmissing == 0)
		return;

	/*
	 * Every missing product gets an entry, found or not, filled below; a
	 * fill that errors out (a cancel, a statement timeout) leaves the cache
	 * invalid, to be emptied by the next call, not entries half filled.
	 */
	owned_cache.valid = false;
	for (i = 0; i < nmissing; i++)
	{
		FactsKey	key = {tenant_id, missing[i]};
		ProductFacts *f = hash_search(owned_cache.facts, &key, HASH_ENTER, NULL);

		owned_cache.entered++;
		memset((char *) f + sizeof(FactsKey), 0, sizeof(ProductFacts) - sizeof(FactsKey));
		f->population_null = f->repeat_share_null = f->repeats_consumable_null = true;
	}
	args[0] = Int64GetDatum(tenant_id);
	args[1] = PointerGetDatum(upsell_int8_array(missing, nmissing));

	rows = serving_run(serving.owned_catalog, args, NULL);
	for (r = 0; r < rows; r++)
	{
		bool		isnull;
		FactsKey	key = {tenant_id, DatumGetInt64(serving_col((int) r, 1, &isnull))};
		ProductFacts *f = hash_search(owned_cache.facts, &key, HASH_FIND, NULL);
		char	   *category = serving_col_text((int) r, 2);
		Datum		d;

		char	   *variant_group = serving_col_text((int) r, 4);
		char	   *title = serving_col_text((int) r, 6);

		if (f == NULL)
			continue;
		f->catalog.known = true;
		if (category != NULL)
			f->catalog.category = MemoryContextStrdup(owned_cache.cxt, category);
		if (variant_group != NULL)
			f->catalog.variant_group = MemoryContextStrdup(owned_cache.cxt, variant_group);
		if (title != NULL)
			f->catalog.title = MemoryContextStrdup(owned_cache.cxt, title);
		d = serving_col((int) r, 3, &isnull);
		f->catalog.in_stock = !isnull && DatumGetBool(d);
		d = serving_col((int) r, 5, &isnull);
		if (!isnull)
		{
			MemoryContext old = MemoryContextSwitchTo(owned_cache.cxt);

			f->catalog.price = DatumGetNumericCopy(d);
			MemoryContextSwitchTo(old);
		}
	}
	rows = serving_run(serving.owned_intervals, args, NULL);
	for (r = 0; r < rows; r++)
	{
		bool		isnull;
		FactsKey	key = {tenant_id, DatumGetInt64(serving_col((int) r, 1, &isnull))};
		ProductFacts *f = hash_search(owned_cache.facts, &key, HASH_FIND, NULL);
		Datum		d;

		if (f == NULL)
			continue;
		f->has_interval = true;
		d = serving_col((int) r, 2, &f->population_null);
		f->population_interval_days = f->population_null ? 0 : DatumGetFloat8(d);
		d = serving_col((int) r, 3, &f->repeat_share_null);
		f->repeat_share = f->repeat_share_null ? 0 : DatumGetFloat8(d);
		d = serving_col((int) r, 4, &f->repeats_consumable_null);
		f->repeats_consumable = f->repeats_consumable_null ? false : DatumGetBool(d);
	}
	owned_cache.valid = true;
	pfree(missing);
}

/*
 * The merchant's consumable rules of the products and of their categories:
 * the products' by id, ascending (a customer of thousands of products and
 * a merchant of thousands of rules), the categories' in the order read.
 */
typedef struct ProductRule
{
	int64		product_id;
	bool		consumable;
} ProductRule;

typedef struct ConsumableRules
{
	ProductRule *products;
	int			nproducts;
	char	  **categories;
	bool	   *category_consumable;
	int			ncategories;
} ConsumableRules;

static int
cmp_product_rule(const void *a, const void *b)
{
	int64		x = ((const ProductRule *) a)->product_id;
	int64		y = ((const ProductRule *) b)->product_id;

	return x < y ? -1 : x > y ? 1 : 0;
}

static ConsumableRules
read_rules(int64 tenant_id, const int64 *ids, int n, const ProductFacts *const *facts)
{
	ConsumableRules rules = {0};
	Datum		args[3];
	Datum	   *cats = palloc(sizeof(Datum) * Max(n, 1));
	int			ncats = 0;
	bool		isnull;
	uint64		rows,
				r;
	int			i;

	args[0] = Int64GetDatum(tenant_id);
	if (serving_run(serving.owned_has_rules, args, NULL) != 1 ||
		!DatumGetBool(serving_col(0, 1, &isnull)))
		return rules;
	for (i = 0; i < n; i++)
		if (facts[i]->catalog.category != NULL)
			cats[ncats++] = CStringGetTextDatum(facts[i]->catalog.category);
	args[1] = PointerGetDatum(upsell_int8_array(ids, n));
	args[2] = PointerGetDatum(construct_array(cats, ncats, TEXTOID, -1, false, TYPALIGN_INT));
	rows = serving_run(serving.owned_rules, args, NULL);
	rules.products = palloc(sizeof(ProductRule) * Max(rows, 1));
	rules.categories = palloc(sizeof(char *) * Max(rows, 1));
	rules.category_consumable = palloc(sizeof(bool) * Max(rows, 1));
	for (r = 0; r < rows; r++)
	{
		bool		product_null;
		Datum		product = serving_col((int) r, 1, &product_null);
		bool		consumable = DatumGetBool(serving_col((int) r, 3, &isnull));

		/* (a rule names a product or a category: CHECK on consumables) */
		if (!product_null)
		{
			rules.products[rules.nproducts].product_id = DatumGetInt64(product);
			rules.products[rules.nproducts++].consumable = consumable;
		}
		else
		{
			rules.categories[rules.ncategories] = serving_col_text((int) r, 2);
			rules.category_consumable[rules.ncategories++] = consumable;
		}
	}
	qsort(rules.products, rules.nproducts, sizeof(ProductRule), cmp_product_rule);
	return rules;
}

/*
 * Whether a product is consumable: the merchant's rule for it, else for its
 * category, else the data's verdict, else false (_consumable_rule).
 */
static bool
consumable_of(const ConsumableRules *rules, int64 product_id, const ProductFacts *f)
{
	ProductRule key = {product_id, false};
	const ProductRule *rule = rules->nproducts > 0
		? bsearch(&key, rules->products, rules->nproducts, sizeof(ProductRule), cmp_product_rule)
		: NULL;
	int			i;

	if (rule != NULL)
		return rule->consumable;
	if (f->catalog.category != NULL)
		for (i = 0; i < rules->ncategories; i++)
			if (rules->categories[i] != NULL && strcmp(rules->categories[i], f->catalog.category) == 0)
				return rules->category_consumable[i];
	return f->repeats_consumable_null ? false : f->repeats_consumable;
}

/* One array column of the history row read, if it has n elements. */
static bool
history_column(int column, Oid type, int n, Datum **values, bool **nulls)
{
	bool		isnull;
	int			k;

	upsell_deconstruct(DatumGetArrayTypeP(serving_col(0, column, &isnull)), type, values, nulls, &k);
	return k == n;
}

/* The columns of upsell._owned_product, in order. */
enum
{
	OWNED_PRODUCT_ID,
	OWNED_PURCHASES,
	OWNED_LAST_AT,
	OWNED_MEDIAN_GAP_DAYS,
	OWNED_CV,
	OWNED_INTERVAL_DAYS,
	OWNED_NEXT_DUE,
	OWNED_CONFIDENCE,
	OWNED_CATEGORY,
	OWNED_CONSUMABLE,
	OWNED_BLOCKED,
	OWNED_NCOLUMNS
};

/* The row type returned is the one this file fills. */
static void
check_owned_product(TupleDesc desc)
{
	static const Oid types[OWNED_NCOLUMNS] = {INT8OID, INT8OID, TIMESTAMPTZOID, FLOAT8OID, FLOAT8OID,
	FLOAT8OID, TIMESTAMPTZOID, FLOAT8OID, TEXTOID, BOOLOID, BOOLOID};
	int			i;

	if (desc->natts != OWNED_NCOLUMNS)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("upsell._owned_product has %d columns, not %d", desc->natts, OWNED_NCOLUMNS)));
	for (i = 0; i < OWNED_NCOLUMNS; i++)
		if (TupleDescAttr(desc, i)->atttypid != types[i] || TupleDescAttr(desc, i)->attisdropped)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column %d of upsell._owned_product is not of the type upsell reads", i + 1)));
}

/*
 * What a customer owns, each product as the view purchase_interval_model
 * computes it, and blocked unless it is a consumable due by due_by (a NULL
 * due_by: blocked NULL for those).  Only the consumables' next_due unless
 * every_due_date (a durable is blocked whenever it is due, and working out
 * a date in the shop's zone was most of the time of a customer of 15,000
 * products).  Called inside a request (SPI and the plans ready, after
 * serving_begin_facts); what it returns lives until the request ends.  A
 * customer without a history owns nothing.
 */
CustomerOwned
serving_customer_owned(int64 tenant_id, int64 customer, bool due_by_null, TimestampTz due_by,
					   bool every_due_date)
{
	CustomerOwned owned = {0};
	Datum		args[2];
	Datum	   *ids_d,
			   *purchases_d,
			   *last_d,
			   *median_d,
			   *cv_d;
	bool	   *ids_n,
			   *purchases_n,
			   *last_n,
			   *median_n,
			   *cv_n;
	int			n,
				i;
	int64	   *ids;
	ProductFacts **facts;
	ConsumableRules rules;
	Interval	one_day = {0, 1, 0};
	text	   *zone;
	struct pg_tz *tz;
	bool		isnull;

	if (serving_run(serving.shop_zone, NULL, NULL) != 1)
		elog(ERROR, "could not read the shop's time zone");
	owned.zone = serving_col_text(0, 1);
	if (owned.zone == NULL)
		elog(ERROR, "the shop's time zone is NULL");
	args[0] = Int64GetDatum(tenant_id);
	args[1] = Int64GetDatum(customer);
	if (serving_run(serving.owned_history, args, NULL) == 0)
		return owned;
	upsell_deconstruct(DatumGetArrayTypeP(serving_col(0, 1, &isnull)), INT8OID, &ids_d, &ids_n, &n);
	if (!history_column(2, INT4OID, n, &purchases_d, &purchases_n) ||
		!history_column(3, TIMESTAMPTZOID, n, &last_d, &last_n) ||
		!history_column(4, FLOAT8OID, n, &median_d, &median_n) ||
		!history_column(5, FLOAT8OID, n, &cv_d, &cv_n))
		goto mismatch;
	ids = palloc(sizeof(int64) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		/* (the model keeps them unique and ascending: the answer's order) */
		if (ids_n[i] || (i > 0 && DatumGetInt64(ids_d[i]) <= ids[i - 1]))
			goto mismatch;
		ids[i] = DatumGetInt64(ids_d[i]);
	}

	/* the products' facts: cached, or read now */
	owned_cache_fill(tenant_id, ids, n);
	facts = palloc(sizeof(ProductFacts *) * Max(n, 1));
	for (i = 0; i < n; i++)
	{
		FactsKey	key = {tenant_id, ids[i]};

		facts[i] = hash_search(owned_cache.facts, &key, HASH_FIND, NULL);
		Assert(facts[i] != NULL);
	}
	rules = read_rules(tenant_id, ids, n, (const ProductFacts *const *) facts);
	zone = cstring_to_text(owned.zone);
	tz = NULL;					/* looked up when a date is due */

	/* (not zeroed: every field is set below; 15,000 products are 2 MB) */
	owned.products = palloc(sizeof(OwnedProduct) * Max(n, 1));
	owned.ids = ids;
	owned.n = n;
	for (i = 0; i < n; i++)
	{
		const ProductFacts *f = facts[i];
		OwnedProduct *o = &owned.products[i];
		bool		own_interval;

		o->product_id = ids[i];
		o->purchases_null = purchases_n[i];
		o->purchases = o->purchases_null ? 0 : DatumGetInt32(purchases_d[i]);
		o->last_null = last_n[i];
		o->last_at = o->last_null ? 0 : DatumGetTimestampTz(last_d[i]);
		o->median_null = median_n[i];
		o->median_gap_days = o->median_null ? 0 : DatumGetFloat8(median_d[i]);
		o->cv_null = cv_n[i];
		o->cv = o->cv_null ? 0 : DatumGetFloat8(cv_d[i]);
		o->category = f->catalog.category;

		/* the customer's own median gap from 2 purchases, else the product's */
		own_interval = !o->purchases_null && o->purchases >= 2;
		if (own_interval)
		{
			o->interval_null = o->median_null;
			o->interval_days = o->median_gap_days;
		}
		else
		{
			o->interval_null = !f->has_interval || f->population_null;
			o->interval_days = o->interval_null ? 0 : f->population_interval_days;
		}
		o->consumable = consumable_of(&rules, ids[i], f);
		/* the last purchase plus the interval, in days of the shop's zone */
		o->due_null = true;
		o->next_due = 0;
		if (!o->last_null && !o->interval_null && (every_due_date || o->consumable))
		{
			Datum		local = DirectFunctionCall2(timestamptz_zone, PointerGetDatum(zone), last_d[i]);
			Datum		span = DirectFunctionCall2(interval_mul, IntervalPGetDatum(&one_day),
												   Float8GetDatum(o->interval_days));

			local = DirectFunctionCall2(timestamp_pl_interval, local, span);
			if (tz == NULL)
				tz = upsell_zone_named(owned.zone);
			o->next_due = upsell_local_time_in(DatumGetTimestamp(local), tz);
			o->due_null = false;
		}
		/* confidence: repeat regularity, else half the product's repeat share */
		o->confidence_null = false;
		o->confidence = 0;
		if (own_interval)
		{
			double		regularity;

			if (o->cv_null)
				regularity = 0.5;
			else
			{
				double		denominator = 1.0 + o->cv;

				if (denominator == 0.0)
					ereport(ERROR,
							(errcode(ERRCODE_DIVISION_BY_ZERO),
							 errmsg("division by zero")));
				regularity = 1.0 / denominator;
			}
			o->confidence = (double) (o->purchases - 1) / (double) o->purchases * regularity;
		}
		else if (f->has_interval && !f->population_null && !f->repeat_share_null)
			o->confidence = 0.5 * f->repeat_share;
		else
			o->confidence_null = true;
		/* blocked: NOT (consumable AND next_due IS NOT NULL AND next_due <= due_by) */
		o->blocked_null = false;
		o->blocked = false;
		if (!o->consumable || o->due_null)
			o->blocked = true;
		else if (due_by_null)
			o->blocked_null = true;
		else
			o->blocked = !(o->next_due <= due_by);
	}
	return owned;

mismatch:
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("the purchase history of customer " INT64_FORMAT " of tenant " INT64_FORMAT " is malformed",
					customer, tenant_id),
			 errdetail("Its arrays differ in length, or its product ids are not unique and ascending."),
			 errhint("Refresh the tenant's models: CALL upsell.refresh(tenant_id => " INT64_FORMAT ").",
					 tenant_id)));
	return owned;				/* keep the compiler quiet */
}

/*
 * The start of a request that reads the products' facts: what the cache
 * holds of the tenants refreshed since it was filled is dropped, and all
 * of it once it has grown too large.  Once a request, before anything is
 * read from the cache: what a request holds of it (a category, a variant
 * group) stays valid until the request ends.  The version is the one the
 * request read (serving_begin_request's), read once.
 */
void
serving_begin_facts(ServingVersion version)
{
	owned_cache_check(version);
}

/* The facts of these products, cached now if they are not. */
void
serving_cache_facts(int64 tenant_id, const int64 *ids, int n)
{
	owned_cache_fill(tenant_id, ids, n);
}

/*
 * A product cached by serving_cache_facts, as product_model lists it (one
 * the table does not have, or not cached: known false, the rest NULL).
 */
const CatalogFacts *
serving_cached_facts(int64 tenant_id, int64 id)
{
	static const CatalogFacts unknown = {0};
	FactsKey	key = {tenant_id, id};
	ProductFacts *f = hash_search(owned_cache.facts, &key, HASH_FIND, NULL);

	return f != NULL ? &f->catalog : &unknown;
}

/*
 * _customer_owned(t bigint, customer bigint, due_by timestamptz)
 * RETURNS upsell._owned_product[]
 */
Datum
upsell_customer_owned(PG_FUNCTION_ARGS)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid			array_type = get_func_rettype(fcinfo->flinfo->fn_oid);
	Oid			row_type = OidIsValid(array_type) ? get_element_type(array_type) : InvalidOid;
	TupleDesc	desc;
	CustomerOwned owned;
	Datum	   *elems;
	ArrayType  *result;
	int			i;

	if (!OidIsValid(row_type))
		elog(ERROR, "_customer_owned must return an array of a composite type");
	desc = lookup_rowtype_tupdesc_copy(row_type, -1);
	check_owned_product(desc);
	/* a NULL customer owns nothing; so does a customer of no tenant */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(row_type));

	serving_begin_call(fcinfo);
	serving_begin_facts(serving_read_version());
	owned = serving_customer_owned(PG_GETARG_INT64(0), PG_GETARG_INT64(1), PG_ARGISNULL(2),
								   PG_ARGISNULL(2) ? 0 : PG_GETARG_TIMESTAMPTZ(2), true);
	elems = MemoryContextAlloc(caller, sizeof(Datum) * Max(owned.n, 1));
	for (i = 0; i < owned.n; i++)
	{
		const OwnedProduct *o = &owned.products[i];
		Datum		values[OWNED_NCOLUMNS];
		bool		nulls[OWNED_NCOLUMNS];
		MemoryContext old;

		values[OWNED_PRODUCT_ID] = Int64GetDatum(o->product_id);
		nulls[OWNED_PRODUCT_ID] = false;
		values[OWNED_PURCHASES] = Int64GetDatum(o->purchases);
		nulls[OWNED_PURCHASES] = o->purchases_null;
		values[OWNED_LAST_AT] = TimestampTzGetDatum(o->last_at);
		nulls[OWNED_LAST_AT] = o->last_null;
		values[OWNED_MEDIAN_GAP_DAYS] = Float8GetDatum(o->median_gap_days);
		nulls[OWNED_MEDIAN_GAP_DAYS] = o->median_null;
		values[OWNED_CV] = Float8GetDatum(o->cv);
		nulls[OWNED_CV] = o->cv_null;
		values[OWNED_INTERVAL_DAYS] = Float8GetDatum(o->interval_days);
		nulls[OWNED_INTERVAL_DAYS] = o->interval_null;
		values[OWNED_NEXT_DUE] = TimestampTzGetDatum(o->next_due);
		nulls[OWNED_NEXT_DUE] = o->due_null;
		values[OWNED_CONFIDENCE] = Float8GetDatum(o->confidence);
		nulls[OWNED_CONFIDENCE] = o->confidence_null;
		nulls[OWNED_CATEGORY] = o->category == NULL;
		values[OWNED_CONSUMABLE] = BoolGetDatum(o->consumable);
		nulls[OWNED_CONSUMABLE] = false;
		values[OWNED_BLOCKED] = BoolGetDatum(o->blocked);
		nulls[OWNED_BLOCKED] = o->blocked_null;

		old = MemoryContextSwitchTo(caller);
		values[OWNED_CATEGORY] = o->category != NULL ? CStringGetTextDatum(o->category) : (Datum) 0;
		/* (a formed tuple is already a composite Datum's form) */
		elems[i] = HeapTupleGetDatum(heap_form_tuple(desc, values, nulls));
		MemoryContextSwitchTo(old);
	}
	serving_end_request();
	result = construct_array(elems, owned.n, row_type, -1, false, TYPALIGN_DOUBLE);
	PG_RETURN_ARRAYTYPE_P(result);
}

/*
 * _in_sorted(ids bigint[], id bigint) RETURNS boolean: whether id is one of
 * ids (no NULLs).  For a customer's owned products held by a serving
 * function (ascending, as _customer_owned returns them) and tested against
 * every candidate: "<> ALL (owned)" compared each candidate with every
 * element through the operator's function, 1.5 ms of a thank-you page for a
 * customer of 3,500 products.  The ids of the last call are kept in
 * fn_extra with whether they ascend; a call with the same ids (compared
 * whole, a memcmp: a query's constant, or a variable of the calling
 * function, whose value may change between two evaluations of a PL/pgSQL
 * expression) searches them by halves, or scans them if they do not ascend.
 */
typedef struct SortedIds
{
	int64	   *ids;
	int			n;
	bool		ascending;
} SortedIds;

/* The elements of a bigint[] as one run of int64, not copied. */
static const int64 *
int8_elements(AnyArrayType *arr, int *n)
{
	ArrayType  *flat;

	if (VARATT_IS_EXPANDED_HEADER(arr) && arr->xpn.dvalues != NULL)
	{
		/* (an expanded array's elements: Datums, int64 by value here) */
		int			i;

		StaticAssertStmt(sizeof(Datum) == sizeof(int64), "bigint is passed by value");
		for (i = 0; arr->xpn.dnulls != NULL && i < arr->xpn.nelems; i++)
			if (arr->xpn.dnulls[i])
				goto nulls;
		*n = arr->xpn.nelems;
		return (const int64 *) arr->xpn.dvalues;
	}
	flat = VARATT_IS_EXPANDED_HEADER(arr) ? arr->xpn.fvalue : &arr->flt;
	if (ARR_HASNULL(flat))
		goto nulls;
	*n = ArrayGetNItems(ARR_NDIM(flat), ARR_DIMS(flat));
	return (const int64 *) ARR_DATA_PTR(flat);

nulls:
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("the ids searched must not contain NULL")));
	return NULL;				/* keep the compiler quiet */
}

PG_FUNCTION_INFO_V1(upsell_in_sorted);

Datum
upsell_in_sorted(PG_FUNCTION_ARGS)
{
	int			n;
	const int64 *ids = int8_elements(PG_GETARG_ANY_ARRAY_P(0), &n);
	int64		id = PG_GETARG_INT64(1);
	SortedIds  *s = (SortedIds *) fcinfo->flinfo->fn_extra;
	int			i;

	if (s == NULL || s->n != n || memcmp(s->ids, ids, sizeof(int64) * n) != 0)
	{
		if (s == NULL)
			s = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(SortedIds));
		else
			pfree(s->ids);
		s->n = n;
		s->ids = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(int64) * Max(n, 1));
		memcpy(s->ids, ids, sizeof(int64) * n);
		s->ascending = true;
		for (i = 1; i < n && s->ascending; i++)
			s->ascending = s->ids[i - 1] < s->ids[i];
		fcinfo->flinfo->fn_extra = s;
	}
	if (s->ascending)
		PG_RETURN_BOOL(serving_sorted_contains(s->ids, s->n, id));
	for (i = 0; i < s->n; i++)
		if (s->ids[i] == id)
			PG_RETURN_BOOL(true);
	PG_RETURN_BOOL(false);
}

/* Recency: last purchase first (last_at DESC, NULL first), then product id. */
static int
cmp_recent(const OwnedProduct *x, const OwnedProduct *y)
{
	if (x->last_null != y->last_null)
		return x->last_null ? -1 : 1;
	if (!x->last_null && x->last_at != y->last_at)
		return x->last_at > y->last_at ? -1 : 1;
	return x->product_id < y->product_id ? -1 : x->product_id > y->product_id ? 1 : 0;
}

static int
cmp_recent_qsort(const void *a, const void *b)
{
	return cmp_recent(*(const OwnedProduct *const *) a, *(const OwnedProduct *const *) b);
}

/*
 * The keep most recent of items, sorted most recent first, moved to the
 * front of items; returns how many (at most keep).  The ones kept so far
 * are a heap whose top is the least recent of them: a customer of 15,000
 * products asked for 100, sorting them all took a fifth of the request.
 */
int
serving_most_recent(const OwnedProduct **items, int n, int keep)
{
	int			size = 0;
	int			i;

	keep = Min(keep, n);
	for (i = 0; i < n; i++)
	{
		const OwnedProduct *item = items[i];
		int			at;

		if (size == keep)
		{
			/* not more recent than the least recent kept: out */
			if (keep == 0 || cmp_recent(item, items[0]) >= 0)
				continue;
			/* replaces it: sift down from the top */
			at = 0;
			for (;;)
			{
				int			child = 2 * at + 1;

				if (child >= size)
					break;
				if (child + 1 < size && cmp_recent(items[child + 1], items[child]) > 0)
					child++;
				if (cmp_recent(items[child], item) <= 0)
					break;
				items[at] = items[child];
				at = child;
			}
			items[at] = item;
			continue;
		}
		/* sift up (items[size..i] are not kept: i >= size) */
		at = size++;
		while (at > 0 && cmp_recent(items[(at - 1) / 2], item) < 0)
		{
			items[at] = items[(at - 1) / 2];
			at = (at - 1) / 2;
		}
		items[at] = item;
	}
	qsort(items, size, sizeof(OwnedProduct *), cmp_recent_qsort);
	return size;
}
