/*
 * upgrade.c
 *		SQL face of the upgrade/downsell core: upsell._upgrade_build() ranks
 *		the candidates of a whole catalog in one call; refresh stores them in
 *		upsell.upgrade_model.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "compat.h"
#include "query_stream.h"
#include "upgrade.h"

PG_FUNCTION_INFO_V1(upsell_upgrade_build);
PG_FUNCTION_INFO_V1(upsell_upgrade_build_query);

/* Output order: by product id, upgrades first, each in rank order. */
typedef struct OutRow
{
	int64		product_id;
	size_t		pos;			/* in the core's result: rank order */
	bool		upgrade;
} OutRow;

static int
cmp_out_row(const void *a, const void *b)
{
	const OutRow *x = a,
			   *y = b;

	if (x->product_id != y->product_id)
		return x->product_id < y->product_id ? -1 : 1;
	if (x->upgrade != y->upgrade)
		return x->upgrade ? -1 : 1;
	return x->pos < y->pos ? -1 : (x->pos > y->pos);
}

/* The elements of a one-dimensional array argument, NULLs flagged. */
static int
array_arg(FunctionCallInfo fcinfo, int argno, Oid elemtype, const char *name,
		  Datum **values, bool **nulls)
{
	ArrayType  *a;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			n;

	if (PG_ARGISNULL(argno))
	{
		*values = NULL;
		*nulls = NULL;
		return 0;
	}
	a = PG_GETARG_ARRAYTYPE_P(argno);
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", name)));
	if (ARR_ELEMTYPE(a) != elemtype)
		elog(ERROR, "%s has element type %u, expected %u", name, ARR_ELEMTYPE(a), elemtype);
	get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	deconstruct_array(a, elemtype, typlen, typbyval, typalign, values, nulls, &n);
	return n;
}

/* Reads the catalog arguments 0-3 into UpgProducts (in work's context). */
static UpgProduct *
products_arg(FunctionCallInfo fcinfo, int *np)
{
	Datum	   *ids,
			   *groups,
			   *cats,
			   *prices;
	bool	   *idsn,
			   *groupsn,
			   *catsn,
			   *pricesn;
	int			ng,
				nc,
				npr;
	UpgProduct *products;

	*np = array_arg(fcinfo, 0, INT8OID, "product_id", &ids, &idsn);
	ng = array_arg(fcinfo, 1, INT4OID, "group_key", &groups, &groupsn);
	nc = array_arg(fcinfo, 2, INT4OID, "category_key", &cats, &catsn);
	npr = array_arg(fcinfo, 3, FLOAT8OID, "price", &prices, &pricesn);
	if (ng != *np || nc != *np || npr != *np)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("product_id, group_key, category_key and price must have the same length")));

	products = palloc_extended(sizeof(UpgProduct) * (*np ? *np : 1), MCXT_ALLOC_HUGE);
	for (int i = 0; i < *np; i++)
	{
		if (idsn[i] || pricesn[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("product_id and price must not contain NULLs")));
		products[i].id = DatumGetInt64(ids[i]);
		products[i].group = groupsn[i] ? -1 : DatumGetInt32(groups[i]);
		products[i].category = catsn[i] ? -1 : DatumGetInt32(cats[i]);
		products[i].price = DatumGetFloat8(prices[i]);
		if (products[i].group < -1 || products[i].category < -1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("group and category keys must not be negative")));
	}
	return products;
}

/* Reads the four parameters starting at argument first. */
static void
params_arg(FunctionCallInfo fcinfo, int first, UpgParams *params)
{
	for (int i = first; i < first + 4; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("max_ratio, per_product, scan_window and max_customer_products must not be NULL")));
	params->max_ratio = PG_GETARG_FLOAT8(first);
	params->per_product = PG_GETARG_INT32(first + 1);
	params->window = PG_GETARG_INT32(first + 2);
	params->max_customer_products = PG_GETARG_INT32(first + 3);
}

/*
 * Emits the kept candidates.  Rows in product id order: the model's primary
 * key then grows at its right edge instead of at random places, several
 * times faster to build.
 */
static void
emit_result(ReturnSetInfo *rsinfo, const UpgProduct *products, UpgResult *result,
			MemoryContext work, MemoryContext callerctx)
{
	OutRow	   *order;
	size_t		c;
	MemoryContext old = MemoryContextSwitchTo(work);

	order = palloc_extended(sizeof(OutRow) * (result->ncands ? result->ncands : 1), MCXT_ALLOC_HUGE);
	for (c = 0; c < result->ncands; c++)
	{
		order[c].product_id = products[result->cands[c].product].id;
		order[c].pos = c;
		order[c].upgrade = result->cands[c].upgrade;
	}
	qsort(order, result->ncands, sizeof(OutRow), cmp_out_row);

	MemoryContextSwitchTo(callerctx);
	for (c = 0; c < result->ncands; c++)
	{
		const UpgCandidate *u = &result->cands[order[c].pos];
		Datum		values[10];
		bool		nulls[10] = {0};

		values[0] = Int64GetDatum(products[u->product].id);
		values[1] = Int64GetDatum(products[u->candidate].id);
		values[2] = BoolGetDatum(u->upgrade);
		values[3] = BoolGetDatum(u->same_group);
		values[4] = Int64GetDatum(u->paths);
		values[5] = Int64GetDatum(result->buyers[u->product]);
		values[6] = Int64GetDatum(result->buyers[u->candidate]);
		values[7] = Float8GetDatum(u->popularity);
		values[8] = Float8GetDatum(u->closeness);
		values[9] = Float8GetDatum(u->score);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		if ((c & 4095) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	MemoryContextSwitchTo(old);
}

/*
 * _upgrade_build(product_id bigint[], group_key int[], category_key int[],
 *				  price float8[], customer bigint[], ordered_at timestamptz[],
 *				  line_product bigint[], max_ratio float8, per_product int,
 *				  scan_window int, max_customer_products int)
 *
 * The first four arrays describe the catalog (one element per product, keys
 * NULL when the product has no group or category), the next three the order
 * lines.  Returns the kept candidates of every product.
 */
Datum
upsell_upgrade_build(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext callerctx = CurrentMemoryContext;
	MemoryContext work;
	Datum	   *customers,
			   *times,
			   *lprods;
	bool	   *customersn,
			   *timesn,
			   *lprodsn;
	int			np,
				nl,
				nt,
				nlp;
	UpgProduct *products;
	UpgLine    *lines;
	size_t		nlines = 0;
	UpgParams	params;
	UpgResult	result;
	const char *error;
	int			i;

	params_arg(fcinfo, 7, &params);
	InitMaterializedSRF(fcinfo, 0);
	work = AllocSetContextCreate(callerctx, "upsell upgrade build", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(work);

	products = products_arg(fcinfo, &np);
	nl = array_arg(fcinfo, 4, INT8OID, "customer", &customers, &customersn);
	nt = array_arg(fcinfo, 5, TIMESTAMPTZOID, "ordered_at", &times, &timesn);
	nlp = array_arg(fcinfo, 6, INT8OID, "line_product", &lprods, &lprodsn);
	if (nt != nl || nlp != nl)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("customer, ordered_at and line_product must have the same length")));

	lines = palloc_extended(sizeof(UpgLine) * (nl ? nl : 1), MCXT_ALLOC_HUGE);
	for (i = 0; i < nl; i++)
	{
		/* a line without customer or product tells nothing */
		if (customersn[i] || lprodsn[i])
			continue;
		lines[nlines].customer = DatumGetInt64(customers[i]);
		lines[nlines].product = DatumGetInt64(lprods[i]);
		lines[nlines].has_time = !timesn[i];
		lines[nlines].time = timesn[i] ? 0 : DatumGetTimestampTz(times[i]);
		nlines++;
	}

	error = upg_compute(products, np, lines, nlines, &params, &result);
	if (error)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot rank upgrade candidates: %s", error)));
	emit_result(rsinfo, products, &result, work, callerctx);
	MemoryContextSwitchTo(callerctx);
	MemoryContextDelete(work);
	return (Datum) 0;
}

/* One customer's lines at a time, for the stream. */
typedef struct LineFeed
{
	UpgStream  *stream;
	UpgLine    *lines;
	size_t		n;
	size_t		cap;
	bool		started;
	int64		customer;
} LineFeed;

static void
feed_flush(LineFeed *f)
{
	if (f->n > 0)
		upg_stream_customer(f->stream, f->lines, f->n);
	f->n = 0;
}

static void
feed_row(Datum *values, bool *nulls, void *arg)
{
	LineFeed   *f = (LineFeed *) arg;
	int64		customer;

	/* a line without customer or product tells nothing */
	if (nulls[0] || nulls[2])
		return;
	customer = DatumGetInt64(values[0]);
	if (!f->started || customer != f->customer)
	{
		if (f->started && customer < f->customer)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the order lines of upgrade paths must be ordered by customer")));
		feed_flush(f);
		f->started = true;
		f->customer = customer;
		CHECK_FOR_INTERRUPTS();
	}
	if (f->n == f->cap)
	{
		f->cap = f->cap ? 2 * f->cap : 64;
		f->lines = f->lines ? repalloc_huge(f->lines, sizeof(UpgLine) * f->cap)
			: palloc_extended(sizeof(UpgLine) * f->cap, MCXT_ALLOC_HUGE);
	}
	f->lines[f->n].customer = customer;
	f->lines[f->n].product = DatumGetInt64(values[2]);
	f->lines[f->n].has_time = !nulls[1];
	f->lines[f->n].time = nulls[1] ? 0 : DatumGetTimestampTz(values[1]);
	f->n++;
}

/*
 * _upgrade_build(product_id bigint[], group_key int[], category_key int[],
 *				  price float8[], lines text, max_ratio float8, per_product int,
 *				  scan_window int, max_customer_products int)
 *
 * The same, with the order lines read from a query returning (customer
 * bigint, ordered_at timestamptz, product_id bigint) ordered by customer:
 * one customer's lines are held at a time, and the query may run in
 * parallel.
 */
Datum
upsell_upgrade_build_query(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext callerctx = CurrentMemoryContext;
	MemoryContext work;
	static const Oid types[3] = {INT8OID, TIMESTAMPTZOID, INT8OID};
	static const char *const names[3] = {"customer bigint", "ordered_at timestamptz", "product_id bigint"};
	char	   *query;
	int			np;
	UpgProduct *products;
	UpgParams	params;
	UpgResult	result;
	LineFeed	feed;
	const char *error;

	if (PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the query of the order lines must not be NULL")));
	params_arg(fcinfo, 5, &params);
	query = text_to_cstring(PG_GETARG_TEXT_PP(4));
	InitMaterializedSRF(fcinfo, 0);
	work = AllocSetContextCreate(callerctx, "upsell upgrade build", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(work);

	products = products_arg(fcinfo, &np);
	error = upg_stream_begin(products, np, &params, &feed.stream);
	if (error)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot rank upgrade candidates: %s", error)));
	feed.lines = NULL;
	feed.n = feed.cap = 0;
	feed.started = false;
	ups_stream_query(query, 3, types, names, feed_row, &feed);
	feed_flush(&feed);
	upg_stream_finish(feed.stream, &result);
	emit_result(rsinfo, products, &result, work, callerctx);
	MemoryContextSwitchTo(callerctx);
	MemoryContextDelete(work);
	return (Datum) 0;
}
