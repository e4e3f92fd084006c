/*
 * bundles.c
 *		SQL face of the itemset miner: frequent itemsets and association rules
 *		with several items on either side, over the rows of a query, and the
 *		bundle model's pass (its bundles and the frequent sets it keeps).
 *
 * Each function reads (order id, product id [, tenant id]) rows once (the
 * same reader as the co-occurrence count of a query) and mines each tenant's
 * orders separately in a memory context of their own, or, for the bundles
 * of an incremental refresh, folds the orders that changed into the sets
 * kept (itemsets_fold).
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
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
PG_FUNCTION_INFO_V1(upsell_bundle_pass);

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

/*
 * What bundle_set_model keeps of a tenant's frequent sets, for the next
 * refresh to fold its new orders into (itemsets_fold): per chunk a magic,
 * then per set its size (one byte: 2 or 3), its order count and its product
 * ids ascending, 8 bytes each in the server's byte order.  An empty chunk
 * says the tenant's lines had no such set.
 */
#define SETS_MAGIC		0x31534255	/* "UBS1" */
#define SETS_PER_CHUNK	(1 << 20)

/*
 * _bundles_and_sets's columns: a product's bundles (bundle_list_model's
 * row), then a chunk of sets'
 */
#define PASS_COLUMNS	9
#define PASS_CHUNK		6

/*
 * One product's bundles gathered as itemsets_top_per_item hands them over,
 * best first, and put as one row of arrays when the next product's come.
 */
typedef struct PassOut
{
	ReturnSetInfo *rsinfo;
	const Itemsets *sets;
	bool		any;			/* a product's bundles are gathered */
	int64		product_id;
	int			nbundles;
	int			nids;
	int			cap;			/* of the per-bundle arrays */
	int			ids_cap;
	Datum	   *ids;
	Datum	   *ends;
	Datum	   *counts;
	Datum	   *supports;
	Datum	   *lifts;
} PassOut;

static void
put_pass_product(PassOut *o)
{
	Datum		values[PASS_COLUMNS];
	bool		nulls[PASS_COLUMNS] = {0};

	if (!o->any)
		return;
	values[0] = Int64GetDatum(o->product_id);
	values[1] = PointerGetDatum(construct_array(o->ids, o->nids, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[2] = PointerGetDatum(construct_array(o->ends, o->nbundles, INT4OID, sizeof(int32),
												true, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(o->counts, o->nbundles, INT8OID, sizeof(int64),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[4] = PointerGetDatum(construct_array(o->supports, o->nbundles, FLOAT8OID, sizeof(float8),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[5] = PointerGetDatum(construct_array(o->lifts, o->nbundles, FLOAT8OID, sizeof(float8),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	nulls[6] = nulls[7] = nulls[8] = true;
	tuplestore_putvalues(o->rsinfo->setResult, o->rsinfo->setDesc, values, nulls);
	for (int i = 1; i <= 5; i++)
		pfree(DatumGetPointer(values[i]));
	o->any = false;
	o->nbundles = 0;
	o->nids = 0;
}

static void
put_pass_bundle(void *arg, const ItemsetTop *top)
{
	PassOut    *o = arg;
	const Itemsets *sets = o->sets;
	int64		product_id = sets->item_ids[top->item];

	if (o->any && o->product_id != product_id)
	{
		put_pass_product(o);
		CHECK_FOR_INTERRUPTS();
	}
	o->any = true;
	o->product_id = product_id;
	if (o->nbundles == o->cap)
	{
		o->cap *= 2;
		o->ends = repalloc(o->ends, sizeof(Datum) * o->cap);
		o->counts = repalloc(o->counts, sizeof(Datum) * o->cap);
		o->supports = repalloc(o->supports, sizeof(Datum) * o->cap);
		o->lifts = repalloc(o->lifts, sizeof(Datum) * o->cap);
	}
	while (o->nids + top->size > o->ids_cap)
	{
		o->ids_cap *= 2;
		o->ids = repalloc(o->ids, sizeof(Datum) * o->ids_cap);
	}
	for (int i = 0; i < top->size; i++)
		o->ids[o->nids++] = Int64GetDatum(top->ids[i]);
	o->ends[o->nbundles] = Int32GetDatum(o->nids);
	o->counts[o->nbundles] = Int64GetDatum(sets->set_counts[top->set]);
	o->supports[o->nbundles] = Float8GetDatum(sets->set_counts[top->set] / (double) sets->transactions);
	o->lifts[o->nbundles] = Float8GetDatum(top->lift);
	o->nbundles++;
}

/* A set of 2 or 3 products as stored: its ids ascending. */
typedef struct StoredSet
{
	int64		ids[3];
	int64		count;
	int			size;
} StoredSet;

/* By size, then ids: the same sets give the same bytes, mined or folded. */
static int
stored_set_cmp(const void *pa, const void *pb)
{
	const StoredSet *a = pa;
	const StoredSet *b = pb;

	if (a->size != b->size)
		return a->size < b->size ? -1 : 1;
	for (int i = 0; i < a->size; i++)
		if (a->ids[i] != b->ids[i])
			return a->ids[i] < b->ids[i] ? -1 : 1;
	return 0;
}

/*
 * The sets of 2 and 3 products, in chunks (at least one: an empty one says
 * the lines have none), counted from every line or folded from the new
 * lines (counted).
 */
static void
put_pass_sets(ReturnSetInfo *rsinfo, const Itemsets *sets, const char *counted)
{
	StoredSet  *all = palloc_extended(sizeof(StoredSet) * (sets->nsets + 1), MCXT_ALLOC_HUGE);
	size_t		n = 0,
				i = 0;
	int32		chunk = 0;
	text	   *counted_text = cstring_to_text(counted);

	for (size_t s = 0; s < sets->nsets; s++)
	{
		const uint32_t *r = sets->members + sets->set_start[s];
		int			k = (int) (sets->set_start[s + 1] - sets->set_start[s]);

		if (k < 2 || k > 3)
			continue;			/* (larger sets are not folded) */
		for (int a = 0; a < k; a++)
		{
			int64		id = sets->item_ids[r[a]];
			int			q;

			for (q = a; q > 0 && all[n].ids[q - 1] > id; q--)
				all[n].ids[q] = all[n].ids[q - 1];
			all[n].ids[q] = id;
		}
		all[n].size = k;
		all[n].count = sets->set_counts[s];
		n++;
	}
	qsort(all, n, sizeof(StoredSet), stored_set_cmp);
	do
	{
		size_t		to = Min(n, i + SETS_PER_CHUNK),
					bytes = sizeof(uint32);
		bytea	   *b;
		char	   *p;
		Datum		values[PASS_COLUMNS];
		bool		nulls[PASS_COLUMNS];
		uint32		magic = SETS_MAGIC;

		for (size_t j = i; j < to; j++)
			bytes += 1 + sizeof(int64) * (1 + all[j].size);
		b = palloc_extended(VARHDRSZ + bytes, MCXT_ALLOC_HUGE);
		SET_VARSIZE(b, VARHDRSZ + bytes);
		p = VARDATA(b);
		memcpy(p, &magic, sizeof(magic));
		p += sizeof(magic);
		for (; i < to; i++)
		{
			*p++ = (char) all[i].size;
			memcpy(p, &all[i].count, sizeof(int64));
			p += sizeof(int64);
			memcpy(p, all[i].ids, sizeof(int64) * all[i].size);
			p += sizeof(int64) * all[i].size;
		}
		memset(nulls, true, sizeof(nulls));
		values[PASS_CHUNK] = Int32GetDatum(chunk++);
		values[PASS_CHUNK + 1] = PointerGetDatum(b);
		values[PASS_CHUNK + 2] = PointerGetDatum(counted_text);
		nulls[PASS_CHUNK] = nulls[PASS_CHUNK + 1] = nulls[PASS_CHUNK + 2] = false;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		pfree(b);
		CHECK_FOR_INTERRUPTS();
	} while (i < n);
	pfree(all);
}

/*
 * The frequent sets a query of chunks (bundle_set_model's, in order) holds,
 * in the current memory context; false when a chunk is not of this format.
 */
static bool
read_stored_sets(const char *query, StoredSets *out)
{
	MemoryContext mine = CurrentMemoryContext;
	bytea	  **chunks;
	uint64		nchunks,
				c;
	size_t		nsets = 0,
				nids = 0;
	size_t	   *start;
	int64	   *ids;
	int64	   *counts;
	bool		ok = true;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(query, true, 0) != SPI_OK_SELECT || SPI_tuptable->tupdesc->natts != 1 ||
		SPI_gettypeid(SPI_tuptable->tupdesc, 1) != BYTEAOID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the query of stored sets must return one bytea column")));
	nchunks = SPI_processed;
	chunks = MemoryContextAlloc(mine, sizeof(bytea *) * (nchunks + 1));
	for (c = 0; c < nchunks; c++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[c], SPI_tuptable->tupdesc, 1, &isnull);
		MemoryContext old = MemoryContextSwitchTo(mine);

		chunks[c] = isnull ? NULL : DatumGetByteaPCopy(d);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();

	/* sizes first, then the arrays */
	for (c = 0; c < nchunks && ok; c++)
	{
		const char *p,
				   *end;
		uint32		magic;

		if (chunks[c] == NULL || VARSIZE(chunks[c]) - VARHDRSZ < sizeof(magic))
		{
			ok = false;
			break;
		}
		p = VARDATA(chunks[c]);
		end = p + VARSIZE(chunks[c]) - VARHDRSZ;
		memcpy(&magic, p, sizeof(magic));
		p += sizeof(magic);
		ok = magic == SETS_MAGIC;
		while (ok && p < end)
		{
			uint8		k = (uint8) *p;

			if (k < 2 || k > 3 || end - p < (ptrdiff_t) (1 + sizeof(int64) * (1 + k)))
				ok = false;
			else
			{
				nsets++;
				nids += k;
				p += 1 + sizeof(int64) * (1 + k);
			}
		}
	}
	if (!ok || nchunks == 0)
		return false;
	start = palloc_extended(sizeof(size_t) * (nsets + 1), MCXT_ALLOC_HUGE);
	ids = palloc_extended(sizeof(int64) * (nids + 1), MCXT_ALLOC_HUGE);
	counts = palloc_extended(sizeof(int64) * (nsets + 1), MCXT_ALLOC_HUGE);
	start[0] = 0;
	nsets = nids = 0;
	for (c = 0; c < nchunks; c++)
	{
		const char *p = VARDATA(chunks[c]) + sizeof(uint32),
				   *end = VARDATA(chunks[c]) + VARSIZE(chunks[c]) - VARHDRSZ;

		while (p < end)
		{
			uint8		k = (uint8) *p++;

			memcpy(&counts[nsets], p, sizeof(int64));
			p += sizeof(int64);
			memcpy(ids + nids, p, sizeof(int64) * k);
			p += sizeof(int64) * k;
			nids += k;
			start[++nsets] = nids;
		}
		pfree(chunks[c]);
	}
	out->nsets = nsets;
	out->start = start;
	out->ids = ids;
	out->counts = counts;
	return true;
}

/*
 * _bundles_and_sets(query, max_size, min_count, per_product, stored,
 * changed): for each product of the query's (order id, product id) lines,
 * its per_product best itemsets of 2..max_size products in at least
 * min_count orders with a lift above 1, ranked by lift, then count, then
 * items, computed here rather than by a window over every itemset, as
 * one row of arrays in rank order (sets_chunk NULL: bundle_list_model's
 * row); then every set of 2..max_size products in at least min_count
 * orders, in chunks (sets_chunk, sets: bundle_set_model's rows),
 * for the next refresh to fold its new orders into.  With stored (a query
 * of the chunks kept at the same min_count, in order) and changed (the keys
 * of the orders that gained lines since), the sets are folded from those
 * (itemsets_fold) instead of mined: the same sets, at a fraction of the
 * cost.  Where they cannot be -- the chunks are not of this format, a
 * stored set is not one of the lines' (lines were deleted), sets of more
 * than 3, or the fold would pass upsell.itemsets_memory_limit -- every line
 * is mined, and a NOTICE says why.
 */
Datum
upsell_bundle_pass(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MineArgs	a;
	int32		per_product;
	MemoryContext work;
	TenantLines *tenants;
	bool		has_tenant;
	int			ntenants;
	Itemsets	sets;
	PassOut		o;
	bool		folded = false;

	for (int i = 0; i < 4; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("query, max_size, min_count and per_product must not be NULL")));
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

	InitMaterializedSRF(fcinfo, 0);
	if (rsinfo->setDesc->natts != PASS_COLUMNS)
		elog(ERROR, "_bundle_pass returns %d columns, not %d", PASS_COLUMNS, rsinfo->setDesc->natts);
	work = AllocSetContextCreate(CurrentMemoryContext, "upsell bundle pass", ALLOCSET_DEFAULT_SIZES);
	tenants = ups_query_lines(a.query, false, work, &ntenants, &has_tenant);
	memset(&sets, 0, sizeof(sets));
	if (ntenants > 0 && tenants[0].lines.n > 0)
	{
		MemoryContext old = MemoryContextSwitchTo(work);

		if (!PG_ARGISNULL(4) && !PG_ARGISNULL(5))
		{
			StoredSets stored;
			const char *why = NULL;

			if (!read_stored_sets(text_to_cstring(PG_GETARG_TEXT_PP(4)), &stored))
				why = "the stored sets are not of this version's format";
			else
			{
				ArrayType  *changed = PG_GETARG_ARRAYTYPE_P(5);
				Datum	   *elems;
				bool	   *nulls;
				int			nelems,
							n = 0;
				int64	   *keys;
				ItemsetParams p;
				ItemsetStatus status;

				deconstruct_array(changed, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
								  &elems, &nulls, &nelems);
				keys = palloc(sizeof(int64) * (nelems + 1));
				for (int i = 0; i < nelems; i++)
					if (!nulls[i])
						keys[n++] = DatumGetInt64(elems[i]);
				p.min_count = a.min_count;
				p.max_size = a.max_size;
				p.memory_limit = a.limit_bytes;
				p.free_lines = false;
				status = itemsets_fold(&tenants[0].lines, &stored, keys, n, &p, &sets);
				folded = status == ITEMSETS_OK;
				why = status == ITEMSETS_MEMORY_LIMIT ? "folding would pass upsell.itemsets_memory_limit"
					: status == ITEMSETS_STORED_STALE ? "a stored set is not one of the lines' (lines were deleted)"
					: status == ITEMSETS_FOLD_UNSUPPORTED ? "sets of more than 3 products, over 2^21 frequent products or orders of hundreds of the changed orders' products are not folded"
					: NULL;
			}
			if (!folded)
				ereport(NOTICE,
						(errmsg("upsell: bundles mined from every line: %s", why)));
		}
		if (!folded)
			mine_tenant(&tenants[0], &a, &sets);
		memset(&o, 0, sizeof(o));
		o.rsinfo = rsinfo;
		o.sets = &sets;
		o.cap = 16;
		o.ids_cap = 64;
		o.ids = palloc(sizeof(Datum) * o.ids_cap);
		o.ends = palloc(sizeof(Datum) * o.cap);
		o.counts = palloc(sizeof(Datum) * o.cap);
		o.supports = palloc(sizeof(Datum) * o.cap);
		o.lifts = palloc(sizeof(Datum) * o.cap);
		itemsets_top_per_item(&sets, 2, 1.0, per_product, put_pass_bundle, &o);
		put_pass_product(&o);
		MemoryContextSwitchTo(old);
		/*
		 * (a tenant without lines keeps no chunk: it has no models, and
		 * the next refresh mines whatever lines it has then)
		 */
		put_pass_sets(rsinfo, &sets, folded ? "new lines" : "all lines");
	}
	MemoryContextDelete(work);
	return (Datum) 0;
}
