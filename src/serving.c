/*
 * serving.c
 *		The request path of the funnel stages: cart_offers, the product page's
 *		offers and _merge_offers (post-purchase), in C over saved plans.
 *
 * A page view costs two lookups here: the one row of upsell.serving_state,
 * which says whether the merchant's rules or the models changed, and one
 * read of the stage's model (cart_model for the cart lines,
 * product_page_model for a product).  The merchant's rules -- stage
 * settings, pinned offers, exclusions, thresholds, whether volume tiers
 * exist, the bestsellers -- are read once per backend and tenant into a
 * cache keyed by serving_state.config_version, which every change of a rules
 * table and every refresh draw anew from a sequence (transactional and never
 * reused, so a change rolled back cannot leave a stale cache behind).  The
 * ranking itself is the plain C merge of src/core/offers.c.
 *
 * The cart reads serving_state and cart_model directly (a heap scan of one
 * row, one index scan), not through SPI: for lookups this small, a query's
 * executor start and end cost more than the lookups themselves.  SELECT
 * privileges are checked as a query would check them.
 */
#include "postgres.h"

#include <math.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/skey.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "offers.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_cart_offers);
PG_FUNCTION_INFO_V1(upsell_product_page_offers);
PG_FUNCTION_INFO_V1(upsell_merge_offers);

typedef enum Stage
{
	STAGE_PRODUCT_PAGE,
	STAGE_CART,
	STAGE_POST_PURCHASE,
	NSTAGES
} Stage;

static const char *const stage_names[NSTAGES] = {"product_page", "cart", "post_purchase"};

#define DEFAULT_MAX_OFFERS	6
#define CART_COMPLEMENTS	12	/* complements of the cart proposed to the merge */
#define CART_GAP_FILLERS	6
#define CART_GAP_ITEMS		2
#define CART_MAX_STEP		3	/* units of a line a quantity step may add */
#define CART_RELEVANT		24	/* complements ranked: the gap fillers' relevance,
								 * and room for exclusions among the first 12 */
#define POPULAR				16	/* bestsellers that fill a cart's slots (some may
								 * substitute a line) */

/* ---- the merchant's rules, cached per tenant ------------------------------ */

typedef enum OfferTrigger
{
	TRIGGER_ALWAYS,
	TRIGGER_PRODUCT,
	TRIGGER_CATEGORY,
	TRIGGER_CART_VALUE
} OfferTrigger;

typedef struct PinnedOffer
{
	int64		offer_id;
	Stage		stage;
	OfferTrigger trigger;
	int64		trigger_product;
	char	   *trigger_category;
	Numeric		min_cart_value;
	bool		has_from,
				has_to;
	TimestampTz active_from,
				active_to;
	int64	   *ids;
	int			nids;
	Numeric		discount;
	char	   *reason;
	double		priority;
	bool		in_stock;		/* every product known and in stock */
} PinnedOffer;

typedef struct Threshold
{
	int64		threshold_id;
	Numeric		amount;
	char	   *currency;		/* NULL: any */
	char	   *reward;			/* NULL: none said */
	bool		has_from,
				has_to;
	TimestampTz active_from,
				active_to;
} Threshold;

typedef struct StageSettings
{
	int			max_offers;
	double		weight[OFFER_NTYPES];
} StageSettings;

typedef struct TenantRules
{
	int64		tenant_id;		/* hash key */
	StageSettings stage[NSTAGES];
	PinnedOffer *pinned;
	int			npinned;
	int64	   *excluded;		/* ascending: never offered (products, categories' products) */
	int			nexcluded;
	int64	   *pair_product;	/* never offered next to pair_with (context) */
	int64	   *pair_with;
	int			npairs;
	Threshold  *thresholds;
	int			nthresholds;
	bool		volume_tiers;
	int64		popular[POPULAR];	/* in stock, by popularity */
	int64		popular_rank[POPULAR];
	char	   *popular_category[POPULAR];	/* NULL: none */
	int			npopular;
	bool		has_candidates;
	TimestampTz candidates_built_at;
} TenantRules;

/* The saved plans and the cache, valid for one schema of the extension. */
static struct
{
	Oid			nsp;
	char	   *nspname;		/* quoted */
	SPIPlanPtr	page_rows;
	SPIPlanPtr	in_stock;
	SPIPlanPtr	categories;
	SPIPlanPtr	variant;
	SPIPlanPtr	tier;

	/* the cache key: serving_state's table (new with the extension) and row */
	bool		valid;
	Oid			state_rel;
	int64		config_version;
	int			per_tenant;		/* -1: no orders registered */
	MemoryContext cxt;
	HTAB	   *tenants;
} serving;

/*
 * SPI is connected on first use in a request: a cart whose rules are
 * cached needs none.  Requests do not nest, and one that failed left its
 * connection to the abort's clean-up; begin_request starts afresh.
 */
static bool spi_connected;

static void
use_spi(void)
{
	if (spi_connected)
		return;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	spi_connected = true;
}

/* The schema-qualified form of a query: every "@." names the extension's schema. */
static char *
qualify(const char *query)
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
prepare(const char *query, int nargs, Oid *argtypes)
{
	/*
	 * Generic plans only: the lookups are by key, and a custom plan would
	 * cost a planning per request whenever the planner guesses the generic
	 * one dearer (as it may for "= ANY ($2)").
	 */
	SPIPlanPtr	plan = SPI_prepare_cursor(qualify(query), nargs, argtypes,
										  CURSOR_OPT_GENERIC_PLAN);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", query, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

static void
forget_plan(SPIPlanPtr *plan)
{
	if (*plan)
		SPI_freeplan(*plan);
	*plan = NULL;
}

/* Plans of the schema fn_oid lives in (the extension's); call connected. */
static void
use_schema(Oid fn_oid)
{
	Oid			nsp = get_func_namespace(fn_oid);
	Oid			int8_2[2] = {INT8OID, INT8OID};
	Oid			by_ids[2] = {INT8OID, INT8ARRAYOID};
	Oid			variant[3] = {TEXTOID, TEXTOID, TEXTOID};
	Oid			tier[3] = {INT8OID, INT4OID, INT8OID};

	if (serving.nsp == nsp && serving.page_rows != NULL)
		return;
	use_spi();
	forget_plan(&serving.page_rows);
	forget_plan(&serving.in_stock);
	forget_plan(&serving.categories);
	forget_plan(&serving.variant);
	forget_plan(&serving.tier);
	serving.valid = false;
	if (serving.nspname)
		pfree(serving.nspname);
	serving.nsp = InvalidOid;
	serving.nspname = MemoryContextStrdup(TopMemoryContext,
										  quote_identifier(get_namespace_name(nsp)));

	serving.page_rows = prepare(
		"SELECT p.offer_type, p.product_ids, p.score, p.discount, p.reason "
		"FROM @.product_page_model p WHERE p.product_id = $2 AND p.tenant_id = $1", 2, int8_2);
	serving.in_stock = prepare(
		"SELECT m.product_id FROM @.product_model m "
		"WHERE m.tenant_id = $1 AND m.product_id = ANY ($2) AND m.in_stock", 2, by_ids);
	serving.categories = prepare(
		"SELECT DISTINCT m.category FROM @.product_model m "
		"WHERE m.tenant_id = $1 AND m.product_id = ANY ($2) AND m.category IS NOT NULL", 2, by_ids);
	serving.variant = prepare("SELECT @.variant_offer_types($1, $2, $3)", 3, variant);
	serving.tier = prepare(
		"SELECT (q.total_saving / nullif(q.total_saving + q.new_unit_price * q.next_quantity, 0))::float8, "
		"       round(1 - q.new_unit_price / q.unit_price, 4), q.reason "
		"FROM @.quantity_offer($1, $2, $3) q WHERE q.next_quantity IS NOT NULL", 3, tier);
	serving.nsp = nsp;
}

/* Runs a saved plan read-only; the rows are in SPI_tuptable. */
static uint64
run(SPIPlanPtr plan, Datum *args, const char *nulls)
{
	int			rc;

	use_spi();
	rc = SPI_execute_plan(plan, args, nulls, true, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

static Datum
col(int row, int column, bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column, isnull);
}

static char *
col_text(int row, int column)
{
	bool		isnull;
	Datum		d = col(row, column, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* Sorts and removes repeats; returns the new length. */
static int
sort_unique(int64 *a, int n)
{
	int			i,
				j = 0;

	if (n <= 1)
		return n;
	qsort(a, n, sizeof(int64), cmp_int64);
	for (i = 1; i < n; i++)
		if (a[i] != a[j])
			a[++j] = a[i];
	return j + 1;
}

static bool
numeric_at_most(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b))) <= 0;
}

static Stage
stage_of(const char *name)
{
	int			s;

	for (s = 0; s < NSTAGES; s++)
		if (strcmp(name, stage_names[s]) == 0)
			return (Stage) s;
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("unknown funnel stage \"%s\"", name),
			 errhint("The stages are product_page, cart and post_purchase.")));
	return STAGE_CART;			/* keep the compiler quiet */
}

/* A relation of the extension's schema, opened for reading. */
static Relation
open_for_read(const char *name)
{
	Oid			relid = get_relname_relid(name, serving.nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation %s.%s does not exist", serving.nspname, name)));
	return table_open(relid, AccessShareLock);
}

/* Raises unless the user may SELECT from the relation, as a query would. */
static void
check_select(Relation rel)
{
	AclResult	acl = pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_SELECT);

	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, get_relkind_objtype(rel->rd_rel->relkind), RelationGetRelationName(rel));
}

/*
 * Reads the cache key; drops every tenant's rules when the merchant's
 * tables or the models changed.
 */
static void
check_version(void)
{
	Relation	rel = open_for_read("serving_state");
	TableScanDesc scan;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	bool		isnull;
	Oid			state_rel = RelationGetRelid(rel);
	int64		config_version;
	Datum		d;
	HASHCTL		ctl;

	check_select(rel);
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	if (!table_scan_getnextslot(scan, ForwardScanDirection, slot))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("upsell.serving_state has no row")));
	config_version = DatumGetInt64(slot_getattr(slot, 2, &isnull));
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	table_close(rel, NoLock);
	if (serving.valid && serving.state_rel == state_rel &&
		serving.config_version == config_version)
		return;

	serving.valid = false;
	if (serving.cxt == NULL)
		serving.cxt = AllocSetContextCreate(TopMemoryContext, "upsell serving rules",
											ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(serving.cxt);
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(TenantRules);
	ctl.hcxt = serving.cxt;
	serving.tenants = hash_create("upsell serving tenants", 16, &ctl,
								  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	use_spi();
	if (SPI_execute(qualify("SELECT (SELECT o.tenant_id IS NOT NULL FROM @.order_source o)"),
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read upsell.order_source");
	d = col(0, 1, &isnull);
	serving.per_tenant = isnull ? -1 : DatumGetBool(d) ? 1 : 0;
	serving.state_rel = state_rel;
	serving.config_version = config_version;
	serving.valid = true;
}

/* The start of every stage's request: the SRF's result, the cache key. */
static void
begin_request(FunctionCallInfo fcinfo)
{
	spi_connected = false;
	InitMaterializedSRF(fcinfo, 0);
	use_schema(fcinfo->flinfo->fn_oid);
	check_version();
}

static void
end_request(void)
{
	if (spi_connected)
		SPI_finish();
	spi_connected = false;
}

/* The tenant a request is about, checked as upsell._tenant() checks it. */
static int64
resolve_tenant(bool tenant_null, int64 tenant_id)
{
	if (serving.per_tenant < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no order lines are registered"),
				 errhint("Call upsell.register_orders() first.")));
	if (serving.per_tenant == 1 && tenant_null)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id is required: order lines are registered per tenant")));
	if (serving.per_tenant == 0 && !tenant_null && tenant_id != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant_id " INT64_FORMAT " given, but order lines are registered without a tenant column", tenant_id),
				 errhint("Pass NULL, or register the orders with tenant_id => 'column'.")));
	return tenant_null ? 0 : tenant_id;
}

/* Runs a query of the rules loader with the tenant as $1. */
static uint64
load_query(const char *query, int64 tenant_id)
{
	Oid			types[1] = {INT8OID};
	Datum		args[1] = {Int64GetDatum(tenant_id)};
	int			rc;

	use_spi();
	rc = SPI_execute_with_args(qualify(query), 1, types, args, NULL, true, 0);

	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

static void
load_settings(TenantRules *r)
{
	uint64		n,
				i;
	int			s,
				t;

	for (s = 0; s < NSTAGES; s++)
	{
		r->stage[s].max_offers = DEFAULT_MAX_OFFERS;
		for (t = 0; t < OFFER_NTYPES; t++)
			r->stage[s].weight[t] = offer_default_weights[t];
	}
	/* the tenant's own row of a stage, else tenant 0's */
	n = load_query("SELECT s.stage, s.max_offers, w.key, w.value::float8 "
				   "FROM (SELECT DISTINCT ON (x.stage) x.* FROM @.stage_settings x "
				   "      WHERE x.tenant_id IN ($1, 0) ORDER BY x.stage, x.tenant_id DESC) s "
				   "LEFT JOIN LATERAL pg_catalog.jsonb_each_text(s.type_weights) w ON true", r->tenant_id);
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		char	   *name = col_text(i, 1);
		Stage		stage = stage_of(name);
		char	   *key = col_text(i, 3);
		Datum		w = col(i, 4, &isnull);

		r->stage[stage].max_offers = DatumGetInt32(col(i, 2, &isnull));
		if (key && !isnull && (t = offer_type_of(key)) >= 0)
			r->stage[stage].weight[t] = DatumGetFloat8(w);
	}
}

static void
load_pinned(TenantRules *r, MemoryContext cxt)
{
	uint64		n,
				i;

	n = load_query("SELECT f.offer_id, f.stage, f.trigger_product_id, f.trigger_category, "
				   "       f.min_cart_value, f.active_from, f.active_to, f.product_ids, f.discount, "
				   "       f.priority, coalesce(f.reason, 'merchant offer'), "
				   "       NOT EXISTS (SELECT FROM pg_catalog.unnest(f.product_ids) o(id) "
				   "                   LEFT JOIN @.product_model m "
				   "                     ON m.tenant_id = f.tenant_id AND m.product_id = o.id "
				   "                   WHERE NOT coalesce(m.in_stock, false)) "
				   "FROM @.offers f WHERE f.tenant_id = $1 ORDER BY f.offer_id", r->tenant_id);
	r->pinned = MemoryContextAllocZero(cxt, Max(n, 1) * sizeof(PinnedOffer));
	for (i = 0; i < n; i++)
	{
		PinnedOffer *p = &r->pinned[i];
		bool		isnull;
		Datum		d;
		MemoryContext old;

		p->offer_id = DatumGetInt64(col(i, 1, &isnull));
		p->stage = stage_of(col_text(i, 2));
		p->trigger = TRIGGER_ALWAYS;
		d = col(i, 3, &isnull);
		if (!isnull)
		{
			p->trigger = TRIGGER_PRODUCT;
			p->trigger_product = DatumGetInt64(d);
		}
		old = MemoryContextSwitchTo(cxt);
		p->trigger_category = col_text(i, 4);
		if (p->trigger_category)
			p->trigger = TRIGGER_CATEGORY;
		d = col(i, 5, &isnull);
		if (!isnull)
		{
			p->trigger = TRIGGER_CART_VALUE;
			p->min_cart_value = DatumGetNumericCopy(d);
		}
		d = col(i, 6, &isnull);
		if ((p->has_from = !isnull))
			p->active_from = DatumGetTimestampTz(d);
		d = col(i, 7, &isnull);
		if ((p->has_to = !isnull))
			p->active_to = DatumGetTimestampTz(d);
		p->ids = upsell_int8_elems(DatumGetArrayTypeP(col(i, 8, &isnull)), &p->nids);
		p->discount = DatumGetNumericCopy(col(i, 9, &isnull));
		p->priority = (double) DatumGetInt32(col(i, 10, &isnull));
		p->reason = col_text(i, 11);
		p->in_stock = DatumGetBool(col(i, 12, &isnull));
		MemoryContextSwitchTo(old);
	}
	r->npinned = (int) n;
}

static void
load_exclusions(TenantRules *r, MemoryContext cxt)
{
	uint64		n,
				i;
	int			nx = 0,
				np = 0;

	/* a category's exclusion is one of each of its products */
	n = load_query("SELECT e.product_id, e.with_product_id FROM @.exclusions e "
				   "WHERE e.tenant_id = $1 AND e.product_id IS NOT NULL "
				   "UNION ALL "
				   "SELECT m.product_id, NULL FROM @.exclusions e "
				   "JOIN @.product_model m ON m.tenant_id = e.tenant_id AND m.category = e.category "
				   "WHERE e.tenant_id = $1", r->tenant_id);
	r->excluded = MemoryContextAlloc(cxt, Max(n, 1) * sizeof(int64));
	r->pair_product = MemoryContextAlloc(cxt, Max(n, 1) * sizeof(int64));
	r->pair_with = MemoryContextAlloc(cxt, Max(n, 1) * sizeof(int64));
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(col(i, 1, &isnull));
		Datum		with = col(i, 2, &isnull);

		if (isnull)
			r->excluded[nx++] = id;
		else
		{
			r->pair_product[np] = id;
			r->pair_with[np++] = DatumGetInt64(with);
		}
	}
	r->nexcluded = sort_unique(r->excluded, nx);
	r->npairs = np;
}

/* What the cart needs besides: thresholds, their candidates' build, tiers. */
static void
load_cart_rules(TenantRules *r, MemoryContext cxt)
{
	uint64		n,
				i;
	bool		isnull;

	n = load_query("SELECT t.threshold_id, t.amount, t.currency, t.active_from, t.active_to, t.reward "
				   "FROM @.thresholds t WHERE t.tenant_id = $1 ORDER BY t.amount, t.threshold_id",
				   r->tenant_id);
	r->thresholds = MemoryContextAllocZero(cxt, Max(n, 1) * sizeof(Threshold));
	for (i = 0; i < n; i++)
	{
		Threshold  *t = &r->thresholds[i];
		Datum		d;
		MemoryContext old = MemoryContextSwitchTo(cxt);

		t->threshold_id = DatumGetInt64(col(i, 1, &isnull));
		t->amount = DatumGetNumericCopy(col(i, 2, &isnull));
		t->currency = col_text(i, 3);
		d = col(i, 4, &isnull);
		if ((t->has_from = !isnull))
			t->active_from = DatumGetTimestampTz(d);
		d = col(i, 5, &isnull);
		if ((t->has_to = !isnull))
			t->active_to = DatumGetTimestampTz(d);
		t->reward = col_text(i, 6);
		MemoryContextSwitchTo(old);
	}
	r->nthresholds = (int) n;

	n = load_query("SELECT c.built_at FROM @.threshold_candidates c WHERE c.tenant_id = $1",
				   r->tenant_id);
	r->has_candidates = n > 0;
	if (n > 0)
		r->candidates_built_at = DatumGetTimestampTz(col(0, 1, &isnull));

	n = load_query("SELECT FROM @.volume_tiers v WHERE v.tenant_id = $1 LIMIT 1", r->tenant_id);
	r->volume_tiers = n > 0;
}

static void
load_popular(TenantRules *r, MemoryContext cxt)
{
	uint64		n,
				i;
	bool		isnull;

	n = load_query("SELECT m.product_id, m.popularity_rank, m.category FROM @.product_model m "
				   "WHERE m.tenant_id = $1 AND m.in_stock ORDER BY m.popularity_rank "
				   "LIMIT " CppAsString2(POPULAR), r->tenant_id);
	for (i = 0; i < n; i++)
	{
		char	   *category = col_text(i, 3);

		r->popular[i] = DatumGetInt64(col(i, 1, &isnull));
		r->popular_rank[i] = DatumGetInt64(col(i, 2, &isnull));
		r->popular_category[i] = category ? MemoryContextStrdup(cxt, category) : NULL;
	}
	r->npopular = (int) n;
}

/* The rules of a tenant, read when the cache has none. */
static TenantRules *
tenant_rules(int64 tenant_id)
{
	bool		found;
	TenantRules *r;
	MemoryContext cxt;

	r = hash_search(serving.tenants, &tenant_id, HASH_FIND, NULL);
	if (r)
		return r;
	/* read everything before entering it: an error leaves no half entry */
	cxt = AllocSetContextCreate(serving.cxt, "upsell tenant rules", ALLOCSET_SMALL_SIZES);
	PG_TRY();
	{
		TenantRules tmp;

		memset(&tmp, 0, sizeof(tmp));
		tmp.tenant_id = tenant_id;
		load_settings(&tmp);
		load_pinned(&tmp, cxt);
		load_exclusions(&tmp, cxt);
		load_cart_rules(&tmp, cxt);
		load_popular(&tmp, cxt);
		r = hash_search(serving.tenants, &tenant_id, HASH_ENTER, &found);
		*r = tmp;
	}
	PG_CATCH();
	{
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return r;
}

/* ---- the pieces of a request ---------------------------------------------- */

/* The offer types the unit's experiment variant shows (all without one). */
static uint32
allowed_types(text *experiment, text *unit_id, Stage stage)
{
	Datum		args[3];
	char		nulls[3] = {' ', ' ', ' '};
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
	args[2] = CStringGetTextDatum(stage_names[stage]);
	run(serving.variant, args, nulls);
	d = col(0, 1, &isnull);
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

static bool
excluded(const TenantRules *r, int64 id, const int64 *context, size_t ncontext)
{
	int			i;

	if (offers_contains(r->excluded, r->nexcluded, id))
		return true;
	for (i = 0; i < r->npairs; i++)
		if (r->pair_product[i] == id && offers_contains(context, ncontext, r->pair_with[i]))
			return true;
	return false;
}

static bool
none_excluded(const TenantRules *r, const int64 *ids, int nids, const int64 *context, size_t ncontext)
{
	int			i;

	for (i = 0; i < nids; i++)
		if (excluded(r, ids[i], context, ncontext))
			return false;
	return true;
}

/* What the caller shows with an offer; the merge sees OfferCandidate. */
typedef struct OfferRow
{
	Datum		discount;		/* numeric */
	char	   *reason;
} OfferRow;

typedef struct Proposal
{
	OfferCandidate *c;
	OfferRow   *row;
	int			n;
	int			cap;
} Proposal;

static void
proposal_init(Proposal *p, int cap)
{
	p->cap = Max(cap, 16);
	p->n = 0;
	p->c = palloc(p->cap * sizeof(OfferCandidate));
	p->row = palloc(p->cap * sizeof(OfferRow));
}

static OfferCandidate *
propose(Proposal *p, OfferType type, int64 *ids, int nids, double score,
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

static Datum
zero_discount(void)
{
	return NumericGetDatum(int64_to_numeric(0));
}

static bool
active_at(bool has_from, TimestampTz from, bool has_to, TimestampTz to, TimestampTz at)
{
	return (!has_from || from <= at) && (!has_to || at < to);
}

/*
 * The stage's pinned offers whose trigger matches: always, a context
 * product, one of the context's categories, or the cart value.
 */
static void
propose_pinned(Proposal *p, const TenantRules *r, Stage stage,
			   const int64 *context, size_t ncontext,
			   char **categories, int ncategories, Numeric cart_value)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	int			i,
				j;

	for (i = 0; i < r->npinned; i++)
	{
		const PinnedOffer *f = &r->pinned[i];
		bool		match = false;
		OfferCandidate *c;

		if (f->stage != stage || !active_at(f->has_from, f->active_from, f->has_to, f->active_to, now))
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
				match = cart_value != NULL && numeric_at_most(f->min_cart_value, cart_value);
				break;
		}
		if (!match)
			continue;
		c = propose(p, OFFER_PINNED, f->ids, f->nids, 0, NumericGetDatum(f->discount), f->reason);
		c->priority = f->priority;
		c->offer_id = f->offer_id;
		c->showable = f->in_stock;
	}
}

/*
 * Merges the proposal under the stage's rules and puts the chosen offers
 * into the SRF's tuplestore.
 */
static void
emit(FunctionCallInfo fcinfo, Proposal *p, const TenantRules *r, Stage stage,
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

		values[0] = CStringGetTextDatum(stage_names[stage]);
		values[1] = CStringGetTextDatum(offer_type_names[c->type]);
		values[2] = PointerGetDatum(upsell_int8_array(c->ids, c->nids));
		values[3] = Int32GetDatum(i + 1);
		values[4] = Float8GetDatum(c->score);
		nulls[4] = c->type == OFFER_PINNED;	/* a merchant's offer has no score */
		values[5] = row->discount;
		values[6] = row->reason ? CStringGetTextDatum(row->reason) : (Datum) 0;
		nulls[6] = row->reason == NULL;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

static text *
opt_text(FunctionCallInfo fcinfo, int arg)
{
	return PG_ARGISNULL(arg) ? NULL : PG_GETARG_TEXT_PP(arg);
}

/* ---- the cart ----------------------------------------------------------- */

typedef struct CartLine
{
	int64		product_id;
	Numeric		price;			/* NULL: none */
	char	   *category;
	bool		in_stock;
	int64	   *complements;
	double	   *complement_log_miss;	/* ln(1 - score), as cart_model stores it */
	int			ncomplements;
	bool		has_upgrade;
	int64		upgrade_id;
	double		upgrade_score;
	char	   *upgrade_reason;
	char	  **complement_categories;	/* parallel to complements; NULL: none */
	int64	   *substitute_ids; /* its variant group's other products */
	int			nsubstitute_ids;
	char	  **substitute_categories;	/* categories whose products substitute it */
	int			nsubstitute_categories;
} CartLine;

/* What substitutes some line of the cart: never offered as a complement. */
typedef struct Substitutes
{
	int64	   *ids;			/* ascending */
	int			nids;
	const char **categories;
	int			ncategories;
} Substitutes;

/* A text[] column as C strings (NULL elements stay NULL), *n its length. */
static char **
text_elems(Datum d, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	char	  **out;
	int			i;

	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
	out = palloc(Max(*n, 1) * sizeof(char *));
	for (i = 0; i < *n; i++)
		out[i] = nulls[i] ? NULL : TextDatumGetCString(elems[i]);
	return out;
}

static Substitutes
cart_substitutes(const CartLine *lines, int nlines)
{
	Substitutes s;
	int			i,
				j,
				q;

	memset(&s, 0, sizeof(s));
	for (i = 0; i < nlines; i++)
	{
		s.nids += lines[i].nsubstitute_ids;
		s.ncategories += lines[i].nsubstitute_categories;
	}
	s.ids = palloc(Max(s.nids, 1) * sizeof(int64));
	s.categories = palloc(Max(s.ncategories, 1) * sizeof(char *));
	s.nids = 0;
	s.ncategories = 0;
	for (i = 0; i < nlines; i++)
	{
		for (j = 0; j < lines[i].nsubstitute_ids; j++)
			s.ids[s.nids++] = lines[i].substitute_ids[j];
		for (j = 0; j < lines[i].nsubstitute_categories; j++)
		{
			const char *c = lines[i].substitute_categories[j];

			for (q = 0; q < s.ncategories; q++)
				if (strcmp(s.categories[q], c) == 0)
					break;
			if (q == s.ncategories && c)
				s.categories[s.ncategories++] = c;
		}
	}
	s.nids = sort_unique(s.ids, s.nids);
	return s;
}

static bool
is_substitute(const Substitutes *s, int64 id, const char *category)
{
	int			q;

	if (offers_contains(s->ids, s->nids, id))
		return true;
	if (category)
		for (q = 0; q < s->ncategories; q++)
			if (strcmp(s->categories[q], category) == 0)
				return true;
	return false;
}

static CartLine *
find_line(CartLine *lines, int n, int64 id)
{
	int			i;

	for (i = 0; i < n; i++)
		if (lines[i].product_id == id)
			return &lines[i];
	return NULL;
}

/*
 * One index scan of the cart's lines in cart_model: prices, categories,
 * complements, upgrades.  The values are copies that outlive the scan.
 */
static CartLine *
read_cart_lines(int64 tenant_id, const int64 *items, int nitems, int *nlines)
{
	CartLine   *lines = palloc0(Max(nitems, 1) * sizeof(CartLine));
	Relation	rel;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData keys[2];
	int			n = 0;

	/*
	 * The model table as this request's snapshot sees it: refresh replaces a
	 * tenant's rows in one transaction, so the snapshot holds exactly one
	 * version of each line's row.
	 */
	*nlines = 0;
	rel = open_for_read("cart_model");
	check_select(rel);
	if (nitems == 0)
	{
		table_close(rel, NoLock);
		return lines;
	}
	if (RelationGetDescr(rel)->natts != 13)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("upsell.cart_model has %d columns, not 13", RelationGetDescr(rel)->natts)));
	index = index_open(upsell_primary_key_index(rel), AccessShareLock);
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(tenant_id));
	ScanKeyEntryInitialize(&keys[1], SK_SEARCHARRAY, 2, BTEqualStrategyNumber, InvalidOid,
						   InvalidOid, F_INT8EQ, PointerGetDatum(upsell_int8_array(items, nitems)));
	scan = upsell_index_beginscan(rel, index, GetActiveSnapshot(), 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	slot = table_slot_create(rel, NULL);
	while (n < nitems && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		CartLine   *l = &lines[n++];
		HeapTuple	tup = ExecCopySlotHeapTuple(slot);
		Datum		v[13];
		bool		null[13];
		ArrayType  *sc;
		int			ncat;

		heap_deform_tuple(tup, RelationGetDescr(rel), v, null);
		l->product_id = DatumGetInt64(v[1]);
		l->price = null[2] ? NULL : DatumGetNumeric(v[2]);
		l->category = null[3] ? NULL : TextDatumGetCString(v[3]);
		l->in_stock = DatumGetBool(v[4]);
		l->complements = upsell_int8_elems(DatumGetArrayTypeP(v[5]), &l->ncomplements);
		sc = DatumGetArrayTypeP(v[6]);
		if (ArrayGetNItems(ARR_NDIM(sc), ARR_DIMS(sc)) != l->ncomplements ||
			ARR_HASNULL(sc) || ARR_ELEMTYPE(sc) != FLOAT8OID)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the cart_model row of product " INT64_FORMAT " is malformed", l->product_id),
					 errhint("Run CALL upsell.refresh().")));
		l->complement_log_miss = (double *) ARR_DATA_PTR(sc);
		l->complement_categories = text_elems(v[10], &ncat);
		if (ncat != l->ncomplements)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the cart_model row of product " INT64_FORMAT " is malformed", l->product_id),
					 errhint("Run CALL upsell.refresh().")));
		l->substitute_ids = upsell_int8_elems(DatumGetArrayTypeP(v[11]), &l->nsubstitute_ids);
		l->substitute_categories = text_elems(v[12], &l->nsubstitute_categories);
		if ((l->has_upgrade = !null[7]))
		{
			l->upgrade_id = DatumGetInt64(v[7]);
			l->upgrade_score = DatumGetFloat8(v[8]);
			l->upgrade_reason = null[9] ? NULL : TextDatumGetCString(v[9]);
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	index_close(index, NoLock);
	table_close(rel, NoLock);
	*nlines = n;
	return lines;
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
				 const Substitutes *subst, int want, int *n)
{
	int			total = 0,
				size = 16,
				m = 0,
				i,
				j;
	int64	   *keys;
	double	   *sums;
	bool	   *used;
	bool	   *blocked;
	Evidence   *e;

	for (i = 0; i < nlines; i++)
		total += lines[i].ncomplements;
	while (size < 2 * total)
		size *= 2;
	keys = palloc(size * sizeof(int64));
	sums = palloc(size * sizeof(double));
	used = palloc0(size * sizeof(bool));
	blocked = palloc0(size * sizeof(bool));
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
				/* a substitute of another line is not a complement of the cart */
				blocked[h] = is_substitute(subst, id, lines[i].complement_categories[j]);
			}
			sums[h] += lines[i].complement_log_miss[j];
		}

	/* ranked by -sum, which orders as the score 1 - exp(sum) does */
	e = palloc(Max(total, 1) * sizeof(Evidence));
	for (i = 0; i < size; i++)
		if (used[i] && !blocked[i] && !offers_contains(items, nitems, keys[i]))
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
static char *
money_out(int64 cents)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out,
											   NumericGetDatum(int64_div_fast_to_numeric(cents, 2))));
}

/* Cents of a numeric amount, rounded up. */
static int64
cents_up(Datum amount)
{
	return DatumGetInt64(DirectFunctionCall1(numeric_int8,
											 DirectFunctionCall1(numeric_ceil,
																 DirectFunctionCall2(numeric_mul, amount,
																					 NumericGetDatum(int64_to_numeric(100))))));
}

/*
 * How naturally a filler adds on: 1 up to half the cart's value, then
 * falling as (half the cart) / added, so that a second big-ticket item does
 * not outrank a small add-on that the shopper takes in passing.
 */
static double
addon_factor(int64 added, int64 cart_cents)
{
	double		half = (double) cart_cents / 2;

	return added <= half ? 1.0 : half / (double) added;
}

static int64
propose_gap_fillers(Proposal *p, const TenantRules *r, int64 tenant_id, Numeric total,
					const int64 *items, int nitems, const CartLine *lines, int nlines,
					const int64 *line_ids, const int32 *qty, int ncart,
					const Substitutes *subst, const Evidence *ev, int nev)
{
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	const Threshold *target = NULL;
	char	   *currency = NULL;
	bool		several = false;
	StringInfoData currencies;
	int64		gap;
	int64	   *skip;
	int64	   *skip_sorted;
	int			nskip_sorted;
	int64	   *rel_ids;
	double	   *rel;
	int			nskip = 0,
				i,
				n;
	GapOffer	out[CART_GAP_FILLERS];
	Datum		ndiff;
	int64		cart_cents;
	bool		natural = false;
	const char *reward;

	if (r->nthresholds == 0)
		return 0;
	/* thresholds are sorted by amount: the first unreached active one */
	for (i = 0; i < r->nthresholds; i++)
	{
		const Threshold *t = &r->thresholds[i];

		if (!active_at(t->has_from, t->active_from, t->has_to, t->active_to, now))
			continue;
		if (t->currency)
		{
			if (currency && strcmp(currency, t->currency) != 0)
				several = true;
			else
				currency = t->currency;
		}
		if (target == NULL && !numeric_at_most(t->amount, total))
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

			if (t->currency && active_at(t->has_from, t->active_from, t->has_to, t->active_to, now))
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
		return 0;

	/* cents, rounded up: the offer must reach the threshold */
	ndiff = DirectFunctionCall2(numeric_sub, NumericGetDatum(target->amount), NumericGetDatum(total));
	gap = cents_up(ndiff);
	if (gap <= 0)
		return 0;
	cart_cents = cents_up(NumericGetDatum(total));
	reward = target->reward ? target->reward :
		psprintf("%s", DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(target->amount))));

	/* never the cart, its substitutes, nor what the merchant excluded */
	skip = palloc((nitems + subst->nids + r->nexcluded + r->npairs + 1) * sizeof(int64));
	for (i = 0; i < nitems; i++)
		skip[nskip++] = items[i];
	for (i = 0; i < subst->nids; i++)
		skip[nskip++] = subst->ids[i];
	for (i = 0; i < r->nexcluded; i++)
		skip[nskip++] = r->excluded[i];
	for (i = 0; i < r->npairs; i++)
		if (offers_contains(items, nitems, r->pair_with[i]))
			skip[nskip++] = r->pair_product[i];
	skip_sorted = palloc(Max(nskip, 1) * sizeof(int64));
	memcpy(skip_sorted, skip, nskip * sizeof(int64));
	nskip_sorted = sort_unique(skip_sorted, nskip);
	/* relevance: relative to the cart's best complement */
	rel_ids = palloc(Max(nev, 1) * sizeof(int64));
	rel = palloc(Max(nev, 1) * sizeof(double));
	for (i = 0; i < nev; i++)
	{
		rel_ids[i] = ev[i].id;
		rel[i] = ev[0].score > 0 ? ev[i].score / ev[0].score : 0;
	}
	n = upsell_gap_offers(serving.nspname, tenant_id, r->candidates_built_at, gap,
						  skip, nskip, subst->categories, subst->ncategories,
						  rel_ids, rel, nev, CART_GAP_FILLERS, CART_GAP_ITEMS, out);
	for (i = 0; i < n; i++)
	{
		int64	   *ids = palloc(out[i].n * sizeof(int64));

		memcpy(ids, out[i].ids, out[i].n * sizeof(int64));
		natural |= out[i].added <= cart_cents / 2;
		propose(p, OFFER_GAP_FILLER, ids, out[i].n,
				out[i].score * addon_factor(out[i].added, cart_cents), zero_discount(),
				psprintf("adds %s to reach %s (%s over)", money_out(out[i].added),
						 DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(target->amount))),
						 money_out(out[i].added - gap)));
	}

	/*
	 * More of a cart line: the fewest units (up to CART_MAX_STEP) that reach
	 * the threshold, for a line the shopper buys several of already or whose
	 * category is bought several at a time (not a substitute category).  The
	 * shopper chose it, so its relevance is that of the best complement;
	 * scored as the search scores a single item.
	 */
	for (i = 0; i < ncart; i++)
	{
		const CartLine *l = find_line((CartLine *) lines, nlines, line_ids[i]);
		int64		price;
		int64		units;
		int			q;
		bool		multi;
		int64	   *id;

		if (l == NULL || l->price == NULL || !l->in_stock)
			continue;
		multi = (qty && qty[i] > 1);
		if (!multi && l->category)
		{
			multi = true;
			for (q = 0; q < l->nsubstitute_categories; q++)
				if (strcmp(l->substitute_categories[q], l->category) == 0)
					multi = false;
		}
		if (!multi || excluded(r, l->product_id, items, nitems))
			continue;
		price = cents_up(NumericGetDatum(l->price));
		if (price <= 0)
			continue;
		units = (gap + price - 1) / price;
		if (units > CART_MAX_STEP)
			continue;
		id = palloc(sizeof(int64));
		*id = l->product_id;
		natural |= units * price <= cart_cents / 2 || units == 1;
		propose(p, OFFER_GAP_FILLER, id, 1,
				(double) gap / (double) (units * price) * 2.0 * pow(0.8, (double) (units - 1)),
				zero_discount(),
				psprintf("add %d more to reach %s (%s over)", (int) units,
						 DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(target->amount))),
						 money_out(units * price - gap)));
	}

	/*
	 * A large gap: nothing that closes it adds on naturally.  Say how far the
	 * cart is, with the best complement that costs less than the gap (offered
	 * as this add-on instead of as a plain complement), rather than push a
	 * second big-ticket item.  Returns its product id, 0 for none.
	 */
	if (!natural)
		for (i = 0; i < nev; i++)
		{
			int64		price = upsell_gap_price(serving.nspname, tenant_id, r->candidates_built_at, ev[i].id);
			int64	   *id;

			if (price <= 0 || price >= gap || offers_contains(skip_sorted, nskip_sorted, ev[i].id) ||
				excluded(r, ev[i].id, items, nitems))
				continue;
			id = palloc(sizeof(int64));
			*id = ev[i].id;
			propose(p, OFFER_GAP_FILLER, id, 1, 2.0, zero_discount(),
					psprintf("you are %s away from %s: adds %s", money_out(gap), reward, money_out(price)));
			return *id;
		}
	return 0;
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
	Substitutes subst;
	int64		addon;
	Proposal	p;
	char	  **categories;
	int			ncategories = 0;
	int			i,
				j;

	if ((cart_arr && ARR_NDIM(cart_arr) > 1) || (qty_arr && ARR_NDIM(qty_arr) > 1))
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("the cart must be one-dimensional arrays of product ids and quantities")));
	if (cart_arr)
		deconstruct_array(cart_arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
						  &cart_elems, &cart_nulls, &ncart);
	items = palloc(Max(ncart, 1) * sizeof(int64));
	for (i = 0; i < ncart; i++)
		if (!cart_nulls[i])
			items[nitems++] = DatumGetInt64(cart_elems[i]);
	nitems = sort_unique(items, nitems);

	begin_request(fcinfo);
	tenant_id = resolve_tenant(PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2));

	lines = read_cart_lines(tenant_id, items, nitems, &nlines);

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
	allowed = allowed_types(opt_text(fcinfo, 3), opt_text(fcinfo, 4), STAGE_CART);
	r = tenant_rules(tenant_id);

	/* every line priced from the catalog, as upsell._cart_total requires */
	total = int64_to_numeric(0);
	for (i = 0; i < ncart; i++)
	{
		int64		id = DatumGetInt64(cart_elems[i]);
		CartLine   *l = find_line(lines, nlines, id);

		if (l == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("product " INT64_FORMAT " of the cart is not in the catalog", id),
					 errhint("Carts are priced from the catalog as of the last CALL upsell.refresh().")));
		if (l->price == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("product " INT64_FORMAT " of the cart has no price in the catalog", id)));
		total = DatumGetNumeric(DirectFunctionCall2(numeric_add, NumericGetDatum(total),
													DirectFunctionCall2(numeric_mul, NumericGetDatum(l->price),
																		NumericGetDatum(int64_to_numeric(qty ? qty[i] : 1)))));
	}
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

	proposal_init(&p, 32);
	propose_pinned(&p, r, STAGE_CART, items, nitems, categories, ncategories,
				   ncart > 0 ? total : NULL);

	/*
	 * complements of the cart (the best not excluded; the gap fillers weigh
	 * the best of all), then bestsellers far below them to fill the slots
	 */
	subst = cart_substitutes(lines, nlines);
	ev = cart_complements(lines, nlines, items, nitems, &subst, CART_RELEVANT, &nev);

	/* what closes the gap to the next threshold (free shipping, a reward) */
	{
		int64	   *line_ids = palloc(Max(ncart, 1) * sizeof(int64));

		for (i = 0; i < ncart; i++)
			line_ids[i] = DatumGetInt64(cart_elems[i]);
		addon = propose_gap_fillers(&p, r, tenant_id, total, items, nitems, lines, nlines,
									line_ids, qty, ncart, &subst, ev, nev);
	}

	for (i = 0, j = 0; i < nev && j < CART_COMPLEMENTS; i++)
		if (ev[i].id != addon && !excluded(r, ev[i].id, items, nitems))
		{
			propose(&p, OFFER_COMPLEMENT, &ev[i].id, 1, ev[i].score, zero_discount(),
					"bought together with the cart");
			j++;
		}
	for (i = 0; i < r->npopular; i++)
	{
		bool		filler = false;
		int			q;

		/* a bestseller that closes the gap comes as that gap filler */
		for (q = 0; q < p.n && !filler; q++)
			filler = p.c[q].type == OFFER_GAP_FILLER && p.c[q].nids == 1 &&
				p.c[q].ids[0] == r->popular[i];
		if (!filler && !is_substitute(&subst, r->popular[i], r->popular_category[i]))
			propose(&p, OFFER_COMPLEMENT, &r->popular[i], 1, 1e-6 / (double) r->popular_rank[i],
					zero_discount(), "popular");
	}


	/* the better version of a cart line, stored per product at refresh */
	for (i = 0; i < nlines; i++)
		if (lines[i].has_upgrade)
			propose(&p, OFFER_UPGRADE, &lines[i].upgrade_id, 1, lines[i].upgrade_score,
					zero_discount(), lines[i].upgrade_reason);

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
			if (run(serving.tier, args, NULL) == 0)
				continue;
			score = col(0, 1, &isnull);
			if (isnull)
				continue;
			propose(&p, OFFER_QUANTITY_TIER, id, 1, DatumGetFloat8(score),
					col(0, 2, &isnull), col_text(0, 3));
		}

	emit(fcinfo, &p, r, STAGE_CART, allowed, items, nitems);
	end_request();
	PG_RETURN_NULL();
}

/* ---- the product page ----------------------------------------------------- */

/*
 * _product_page_offers(tenant_id bigint, product_id bigint, category text,
 *						experiment text DEFAULT NULL, unit_id text DEFAULT NULL)
 * RETURNS SETOF upsell.offer
 *
 * The page's stored offers (complements, upgrades, bundles; in stock as of
 * the refresh) with the pinned offers, exclusions and settings as of now.
 * The caller (the view, or product_page_offers()) has found the product
 * and its category in product_model.
 */
Datum
upsell_product_page_offers(PG_FUNCTION_ARGS)
{
	int64		tenant_id;
	int64		product_id;
	char	   *category = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	TenantRules *r;
	uint32		allowed;
	Proposal	p;
	Datum		args[2];
	uint64		n,
				k;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id and product_id must not be NULL")));
	tenant_id = PG_GETARG_INT64(0);
	product_id = PG_GETARG_INT64(1);
	begin_request(fcinfo);
	allowed = allowed_types(opt_text(fcinfo, 3), opt_text(fcinfo, 4), STAGE_PRODUCT_PAGE);
	r = tenant_rules(tenant_id);

	proposal_init(&p, 16);
	propose_pinned(&p, r, STAGE_PRODUCT_PAGE, &product_id, 1,
				   category ? &category : NULL, category ? 1 : 0, NULL);
	args[0] = Int64GetDatum(tenant_id);
	args[1] = Int64GetDatum(product_id);
	n = run(serving.page_rows, args, NULL);
	for (k = 0; k < n; k++)
	{
		bool		isnull;
		char	   *type = col_text(k, 1);
		int			t = type ? offer_type_of(type) : -1;
		int			nids;
		int64	   *ids = upsell_int8_elems(DatumGetArrayTypeP(col(k, 2, &isnull)), &nids);
		double		score = DatumGetFloat8(col(k, 3, &isnull));

		if (t < 0 || t == OFFER_PINNED || nids == 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the product_page_model row of product " INT64_FORMAT " is malformed", product_id),
					 errhint("Run CALL upsell.refresh().")));
		propose(&p, (OfferType) t, ids, nids, score, col(k, 4, &isnull), col_text(k, 5));
	}
	emit(fcinfo, &p, r, STAGE_PRODUCT_PAGE, allowed, &product_id, 1);
	end_request();
	PG_RETURN_NULL();
}

/* ---- any stage's candidates ----------------------------------------------- */

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
	stage = stage_of(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	tenant_id = PG_GETARG_INT64(1);
	if (!PG_ARGISNULL(2))
	{
		context = upsell_int8_elems(DatumGetArrayTypeP(PG_GETARG_DATUM(2)), &ncontext);
		ncontext = sort_unique(context, ncontext);
	}
	begin_request(fcinfo);
	allowed = allowed_types(opt_text(fcinfo, 5), opt_text(fcinfo, 6), stage);
	r = tenant_rules(tenant_id);

	proposal_init(&p, 32);
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
			propose(&p, (OfferType) t, ids, nids, DatumGetFloat8(values[4]),
					isnull[5] ? zero_discount() : values[5],
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
	nproposed = sort_unique(proposed, nproposed);
	if (nproposed > 0)
	{
		Datum		args[2];
		uint64		n,
					k;
		bool		isnull;

		args[0] = Int64GetDatum(tenant_id);
		args[1] = PointerGetDatum(upsell_int8_array(proposed, nproposed));
		n = run(serving.in_stock, args, NULL);
		stocked = palloc(Max(n, 1) * sizeof(int64));
		for (k = 0; k < n; k++)
			stocked[nstocked++] = DatumGetInt64(col(k, 1, &isnull));
		nstocked = sort_unique(stocked, nstocked);
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
		n = run(serving.categories, args, NULL);
		categories = palloc(Max(n, 1) * sizeof(char *));
		for (k = 0; k < n; k++)
			categories[ncategories++] = col_text(k, 1);
	}
	propose_pinned(&p, r, stage, context, ncontext, categories, ncategories, cart_value);

	emit(fcinfo, &p, r, stage, allowed, context, ncontext);
	end_request();
	PG_RETURN_NULL();
}
