/*
 * bundles.c
 *		SQL face of the itemset miner: frequent itemsets and association rules
 *		with several items on either side, over the rows of a query.
 *
 * Both functions read (order id, product id [, tenant id]) rows once (the
 * same reader as the co-occurrence count of a query) and mine each tenant's
 * orders separately in a memory context of their own.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "itemsets.h"
#include "query_lines.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_itemsets_from_query);
PG_FUNCTION_INFO_V1(upsell_rules_from_query);
PG_FUNCTION_INFO_V1(upsell_bundles_from_query);

typedef struct MineArgs
{
	char	   *query;
	float8		min_support;
	int32		max_size;
	int64		min_count;
	size_t		limit_bytes;
	int			limit_kb;
} MineArgs;

/* Longer sets are not offers (and the miner's buffers are sized by it). */
#define ITEMSETS_MAX_SIZE 100

/* upsell.itemsets_memory_limit, -1: 32 times work_mem */
static void
mine_limit(MineArgs *a)
{
	a->limit_kb = upsell_itemsets_limit_kb();
	a->limit_bytes = a->limit_kb == 0 ? 0 : (size_t) a->limit_kb * 1024;
}

/* Arguments shared by both functions: (query, min_support, max_size, min_count) */
static void
mine_args(FunctionCallInfo fcinfo, int support_arg, int size_arg, int count_arg,
		  MineArgs *a)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("query must not be NULL")));
	a->query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	/* NULL min_support: min_count alone decides; one of them must be given */
	if (PG_ARGISNULL(support_arg) && PG_ARGISNULL(count_arg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("min_support and min_count must not both be NULL")));
	a->min_support = PG_ARGISNULL(support_arg) ? 0 : PG_GETARG_FLOAT8(support_arg);
	if (!(a->min_support >= 0 && a->min_support <= 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_support must be between 0 and 1: %g", a->min_support)));
	if (PG_ARGISNULL(size_arg))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("max_size must not be NULL")));
	a->max_size = PG_GETARG_INT32(size_arg);
	if (a->max_size < 1 || a->max_size > ITEMSETS_MAX_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_size must be between 1 and %d: %d", ITEMSETS_MAX_SIZE, a->max_size)));
	a->min_count = PG_ARGISNULL(count_arg) ? 1 : PG_GETARG_INT32(count_arg);
	if (a->min_count < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_count must be at least 1: %lld", (long long) a->min_count)));
	mine_limit(a);
}

/*
 * Mines one tenant's lines; the result lives in the current memory context.
 * The threshold is the stricter of min_count and min_support.
 */
static void
mine_tenant(TenantLines *t, const MineArgs *a, Itemsets *sets)
{
	ItemsetParams p;
	int64		orders = itemsets_count_orders(&t->lines);

	p.min_count = Max(a->min_count, itemsets_min_count(a->min_support, orders));
	p.max_size = a->max_size;
	p.memory_limit = a->limit_bytes;
	/* the tenant's lines are read only here */
	p.free_lines = true;
	if (itemsets_mine(&t->lines, &p, sets) != ITEMSETS_OK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("frequent itemset mining stopped at the memory limit of %d kB",
						a->limit_kb),
				 errdetail("Itemsets of up to %d products in at least %lld of %lld orders need more memory than \"upsell.itemsets_memory_limit\" allows.",
						   a->max_size, (long long) p.min_count, (long long) orders),
				 errhint("Raise min_support or min_count, lower max_size, or raise \"upsell.itemsets_memory_limit\".")));
}

/* Product ids of ranks, sorted, as bigint[]. */
static ArrayType *
ids_array(const Itemsets *sets, const uint32_t *ranks, int k, Datum *buf)
{
	int64		ids[64];
	int64	   *v = k <= 64 ? ids : palloc(sizeof(int64) * k);
	int			i,
				j;

	for (i = 0; i < k; i++)
	{
		int64		id = sets->item_ids[ranks[i]];

		for (j = i; j > 0 && v[j - 1] > id; j--)
			v[j] = v[j - 1];
		v[j] = id;
	}
	for (i = 0; i < k; i++)
		buf[i] = Int64GetDatum(v[i]);
	if (v != ids)
		pfree(v);
	return construct_array(buf, k, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

/*
 * Reads the query's lines (per tenant when the per_tenant argument is true)
 * and mines each tenant's orders in a memory context of its own, handing the
 * itemsets to emit.  Sets up the materialized result of the calling SRF.
 */
typedef void (*emit_fn) (FunctionCallInfo fcinfo, Itemsets *sets, int64 tenant,
						 bool has_tenant, void *arg);

static void
mine_each_tenant(FunctionCallInfo fcinfo, const MineArgs *a, bool per_tenant,
				 emit_fn emit, void *arg)
{
	MemoryContext work;
	TenantLines *tenants;
	bool		has_tenant;
	int			ntenants;
	int			ti;

	InitMaterializedSRF(fcinfo, 0);
	work = AllocSetContextCreate(CurrentMemoryContext, "upsell itemsets",
								 ALLOCSET_DEFAULT_SIZES);
	tenants = ups_query_lines(a->query, per_tenant, work, &ntenants, &has_tenant);
	for (ti = 0; ti < ntenants; ti++)
	{
		MemoryContext tenantctx = AllocSetContextCreate(work, "upsell itemsets of a tenant",
														ALLOCSET_DEFAULT_SIZES);
		MemoryContext old = MemoryContextSwitchTo(tenantctx);
		Itemsets	sets;

		mine_tenant(&tenants[ti], a, &sets);
		emit(fcinfo, &sets, tenants[ti].tenant, has_tenant, arg);
		MemoryContextSwitchTo(old);
		MemoryContextDelete(tenantctx);
	}
	MemoryContextDelete(work);
}

static void
put_itemsets(FunctionCallInfo fcinfo, Itemsets *sets, int64 tenant, bool has_tenant,
			 void *arg)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const MineArgs *a = arg;
	Datum	   *buf = palloc(sizeof(Datum) * (a->max_size + 1));
	double		n = (double) sets->transactions;
	size_t		i;

	for (i = 0; i < sets->nsets; i++)
	{
		const uint32_t *r = sets->members + sets->set_start[i];
		int			k = (int) (sets->set_start[i + 1] - sets->set_start[i]);
		Datum		values[6];
		bool		nulls[6] = {0};

		values[0] = Int64GetDatum(tenant);
		nulls[0] = !has_tenant;
		values[1] = PointerGetDatum(ids_array(sets, r, k, buf));
		values[2] = Int32GetDatum(k);
		values[3] = Int64GetDatum(sets->set_counts[i]);
		values[4] = Float8GetDatum(sets->set_counts[i] / n);
		values[5] = Float8GetDatum(itemsets_lift(sets, i));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		pfree(DatumGetPointer(values[1]));
		if ((i & 0x3fff) == 0)
			CHECK_FOR_INTERRUPTS();
	}
}

/*
 * _itemsets_from_query(query, min_support, max_size, min_count, per_tenant):
 * every itemset of up to max_size products in at least max(min_count,
 * ceil(min_support * orders)) orders; per tenant when per_tenant and the
 * query returns a third (tenant) column.
 */
Datum
upsell_itemsets_from_query(PG_FUNCTION_ARGS)
{
	MineArgs	a;

	mine_args(fcinfo, 1, 2, 3, &a);
	mine_each_tenant(fcinfo, &a, !PG_ARGISNULL(4) && PG_GETARG_BOOL(4), put_itemsets, &a);
	return (Datum) 0;
}

typedef struct RuleOut
{
	ReturnSetInfo *rsinfo;
	const Itemsets *sets;
	int64		tenant;
	bool		has_tenant;
	Datum	   *buf;
	const MineArgs *a;
	float8		min_confidence;
	int32		max_consequent;
} RuleOut;

static void
put_rule(void *arg, const ItemsetRule *rule)
{
	RuleOut    *o = arg;
	CoocMetrics m;
	Datum		values[9];
	bool		nulls[9] = {0};

	cooc_metrics(rule->count, rule->antecedent_count, rule->consequent_count,
				 o->sets->transactions, &m);
	values[0] = Int64GetDatum(o->tenant);
	nulls[0] = !o->has_tenant;
	values[1] = PointerGetDatum(ids_array(o->sets, rule->antecedent, rule->nantecedent, o->buf));
	values[2] = PointerGetDatum(ids_array(o->sets, rule->consequent, rule->nconsequent, o->buf));
	values[3] = Float8GetDatum(m.support);
	values[4] = Float8GetDatum(m.confidence);
	values[5] = Float8GetDatum(m.lift);
	values[6] = Float8GetDatum(m.leverage);
	values[7] = Float8GetDatum(m.conviction);
	values[8] = Int64GetDatum(rule->count);
	tuplestore_putvalues(o->rsinfo->setResult, o->rsinfo->setDesc, values, nulls);
	pfree(DatumGetPointer(values[1]));
	pfree(DatumGetPointer(values[2]));
}

static void
put_rules(FunctionCallInfo fcinfo, Itemsets *sets, int64 tenant, bool has_tenant,
		  void *arg)
{
	RuleOut    *o = arg;

	o->rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	o->sets = sets;
	o->tenant = tenant;
	o->has_tenant = has_tenant;
	o->buf = palloc(sizeof(Datum) * (o->a->max_size + 1));
	if (itemsets_rules(sets, o->min_confidence, o->max_consequent, o->a->limit_bytes,
					   put_rule, o) != ITEMSETS_OK)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the index over %zu frequent itemsets exceeds the memory limit of %d kB",
						sets->nsets, o->a->limit_kb),
				 errhint("Raise min_support or min_count, lower max_size, or raise \"upsell.itemsets_memory_limit\".")));
}

/*
 * _rules_from_query(query, min_support, min_confidence, max_size, min_count,
 * max_consequent, per_tenant): the rules A => C of the frequent itemsets,
 * with the measures arules reports.
 */
Datum
upsell_rules_from_query(PG_FUNCTION_ARGS)
{
	MineArgs	a;
	RuleOut		o;

	mine_args(fcinfo, 1, 3, 4, &a);
	o.a = &a;
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("min_confidence must not be NULL")));
	o.min_confidence = PG_GETARG_FLOAT8(2);
	if (!(o.min_confidence >= 0 && o.min_confidence <= 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_confidence must be between 0 and 1: %g", o.min_confidence)));
	o.max_consequent = PG_ARGISNULL(5) ? 1 : PG_GETARG_INT32(5);
	if (o.max_consequent < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_consequent must be at least 1: %d", o.max_consequent)));
	if (a.max_size < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_size must be at least 2 for rules: %d", a.max_size),
				 errdetail("A rule has at least one product on each side.")));
	mine_each_tenant(fcinfo, &a, !PG_ARGISNULL(6) && PG_GETARG_BOOL(6), put_rules, &o);
	return (Datum) 0;
}

typedef struct BundleOut
{
	ReturnSetInfo *rsinfo;
	const Itemsets *sets;
	Datum	   *buf;
} BundleOut;

static void
put_bundle(void *arg, const ItemsetTop *top)
{
	BundleOut  *o = arg;
	const Itemsets *sets = o->sets;
	double		n = (double) sets->transactions;
	Datum		values[7];
	bool		nulls[7] = {0};
	int			i;

	for (i = 0; i < top->size; i++)
		o->buf[i] = Int64GetDatum(top->ids[i]);
	values[0] = Int64GetDatum(sets->item_ids[top->item]);
	values[1] = Int32GetDatum(top->rank);
	values[2] = PointerGetDatum(construct_array(o->buf, top->size, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[3] = Int32GetDatum(top->size);
	values[4] = Int64GetDatum(sets->set_counts[top->set]);
	values[5] = Float8GetDatum(sets->set_counts[top->set] / n);
	values[6] = Float8GetDatum(top->lift);
	tuplestore_putvalues(o->rsinfo->setResult, o->rsinfo->setDesc, values, nulls);
	pfree(DatumGetPointer(values[2]));
}

static void
put_bundles(FunctionCallInfo fcinfo, Itemsets *sets, int64 tenant, bool has_tenant,
			void *arg)
{
	BundleOut	o;
	int32		per_product = *(int32 *) arg;

	o.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	o.sets = sets;
	o.buf = palloc(sizeof(Datum) * (PG_GETARG_INT32(1) + 1));
	itemsets_top_per_item(sets, 2, 1.0, per_product, put_bundle, &o);
}

/*
 * _bundles_from_query(query, max_size, min_count, per_product): for each
 * product of the query's (order id, product id) rows, its per_product best
 * itemsets of 2..max_size products in at least min_count orders with a lift
 * above 1, ranked by lift, then count, then items (what the bundle model
 * keeps), computed here rather than by a window over every itemset.
 */
Datum
upsell_bundles_from_query(PG_FUNCTION_ARGS)
{
	MineArgs	a;
	int32		per_product;

	/* STRICT: no NULL arguments */
	a.query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	a.min_support = 0;
	a.max_size = PG_GETARG_INT32(1);
	if (a.max_size < 2 || a.max_size > ITEMSETS_MAX_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_size must be between 2 and %d: %d", ITEMSETS_MAX_SIZE, a.max_size)));
	a.min_count = PG_GETARG_INT32(2);
	if (a.min_count < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_count must be at least 1: %lld", (long long) a.min_count)));
	per_product = PG_GETARG_INT32(3);
	if (per_product < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("per_product must not be negative: %d", per_product)));
	mine_limit(&a);
	mine_each_tenant(fcinfo, &a, false, put_bundles, &per_product);
	return (Datum) 0;
}
