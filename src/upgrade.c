/*
 * upgrade.c
 *		SQL face of the upgrade/downsell core: upsell._upgrade_build() ranks
 *		the candidates of a whole catalog in one call, one row per product and
 *		direction with the candidates as arrays; refresh stores them in
 *		upsell.upgrade_list_model (read as rows through the view
 *		upsell.upgrade_model).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "compat.h"
#include "query_stream.h"
#include "upgrade.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_upgrade_build);
PG_FUNCTION_INFO_V1(upsell_upgrade_build_query);
PG_FUNCTION_INFO_V1(upsell_upgrade_evidence_sql);

/*
 * Why an upgrade is offered, as every stage and tactic words it: the
 * customers who climbed from the product to it, else the variant group's
 * next step, else the category's.  A NULL piece of evidence counts as none
 * (a NULL buyers is written empty).
 */
text *
upsell_upgrade_evidence(bool paths_null, int64 paths, bool buyers_null, int64 buyers,
						bool same_group_null, bool same_group)
{
	if (!paths_null && paths > 0)
		return cstring_to_text(psprintf(INT64_FORMAT " of %s customers who bought it later bought this", paths,
										buyers_null ? "" : psprintf(INT64_FORMAT, buyers)));
	if (!same_group_null && same_group)
		return cstring_to_text("the next step up in the same variant group");
	return cstring_to_text("a step up in the same category");
}

/*
 * _upgrade_evidence(paths bigint, buyers bigint, same_group boolean)
 * RETURNS text
 */
Datum
upsell_upgrade_evidence_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(upsell_upgrade_evidence(PG_ARGISNULL(0), PG_ARGISNULL(0) ? 0 : PG_GETARG_INT64(0),
											 PG_ARGISNULL(1), PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1),
											 PG_ARGISNULL(2), PG_ARGISNULL(2) ? false : PG_GETARG_BOOL(2)));
}

/*
 * Output order: by product id, then kind as the model's primary key sorts
 * it ('downsell' before 'upgrade'); one output row is a product's run of
 * candidates of one direction, in rank order.
 */
typedef struct OutRun
{
	int64		product_id;
	size_t		from;			/* in the core's result: rank order */
	size_t		to;
	bool		upgrade;
} OutRun;

static int
cmp_out_run(const void *a, const void *b)
{
	const OutRun *x = a,
			   *y = b;

	if (x->product_id != y->product_id)
		return x->product_id < y->product_id ? -1 : 1;
	if (x->upgrade != y->upgrade)
		return x->upgrade ? 1 : -1;
	return 0;
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

static ArrayType *
int8_array(const Datum *d, int n)
{
	return construct_array((Datum *) d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

static ArrayType *
float8_array(const Datum *d, int n)
{
	return construct_array((Datum *) d, n, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

/*
 * The kept candidates as runs, one per product and direction, in primary key
 * order (product id, then 'downsell' before 'upgrade').
 */
static OutRun *
result_runs(const UpgProduct *products, const UpgResult *result, size_t *nruns)
{
	OutRun	   *runs;
	size_t		n = 0;

	/* the core's result is grouped by product, upgrades first, in rank order */
	runs = palloc_extended(sizeof(OutRun) * (result->ncands ? result->ncands : 1), MCXT_ALLOC_HUGE);
	for (size_t c = 0; c < result->ncands; c++)
	{
		const UpgCandidate *u = &result->cands[c];

		if (c == 0 || u->product != result->cands[c - 1].product ||
			u->upgrade != result->cands[c - 1].upgrade)
		{
			runs[n].product_id = products[u->product].id;
			runs[n].from = c;
			runs[n].upgrade = u->upgrade;
			n++;
		}
		runs[n - 1].to = c + 1;
	}
	qsort(runs, n, sizeof(OutRun), cmp_out_run);
	*nruns = n;
	return runs;
}

#define UPGRADE_COLUMNS 10
/* and, with counts kept: counts_chunk, counts_state, counts_from */
#define COUNTS_COLUMNS	3
#define MAX_COLUMNS		(UPGRADE_COLUMNS + COUNTS_COLUMNS)

/*
 * The path pairs a kept chunk of counts holds at most: 16 bytes each, 128 MB
 * a chunk, far from the 1 GB bound of a value.
 */
#define COUNTS_CHUNK_PAIRS	((size_t) 1 << 23)

/* A run's output row (its arrays allocated in the current context). */
static void
run_values(const UpgProduct *products, const UpgResult *result, const OutRun *run,
		   Datum *values, bool *nulls)
{
	int			n = (int) (run->to - run->from);
	Datum	   *ids = palloc(sizeof(Datum) * n),
			   *same = palloc(sizeof(Datum) * n),
			   *paths = palloc(sizeof(Datum) * n),
			   *cbuyers = palloc(sizeof(Datum) * n),
			   *pop = palloc(sizeof(Datum) * n),
			   *close = palloc(sizeof(Datum) * n),
			   *score = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
	{
		const UpgCandidate *u = &result->cands[run->from + i];

		ids[i] = Int64GetDatum(products[u->candidate].id);
		same[i] = BoolGetDatum(u->same_group);
		paths[i] = Int64GetDatum(u->paths);
		cbuyers[i] = Int64GetDatum(result->buyers[u->candidate]);
		pop[i] = Float8GetDatum(u->popularity);
		close[i] = Float8GetDatum(u->closeness);
		score[i] = Float8GetDatum(u->score);
	}
	memset(nulls, 0, sizeof(bool) * UPGRADE_COLUMNS);
	memset(nulls + UPGRADE_COLUMNS, true, sizeof(bool) * COUNTS_COLUMNS);
	values[0] = Int64GetDatum(run->product_id);
	values[1] = BoolGetDatum(run->upgrade);
	values[2] = Int64GetDatum(result->buyers[result->cands[run->from].product]);
	values[3] = PointerGetDatum(int8_array(ids, n));
	values[4] = PointerGetDatum(construct_array(same, n, BOOLOID, 1, true, TYPALIGN_CHAR));
	values[5] = PointerGetDatum(int8_array(paths, n));
	values[6] = PointerGetDatum(int8_array(cbuyers, n));
	values[7] = PointerGetDatum(float8_array(pop, n));
	values[8] = PointerGetDatum(float8_array(close, n));
	values[9] = PointerGetDatum(float8_array(score, n));
}

/* What emit_result and its merge with the stored rows share. */
typedef struct Emitter
{
	ReturnSetInfo *rsinfo;
	const UpgProduct *products;
	const UpgResult *result;
	OutRun	   *runs;
	size_t		nruns;
	MemoryContext rowctx;		/* a row's arrays, reset after each */
	MemoryContext callerctx;	/* the result's tuplestore */
	/* with stored rows: */
	bool	   *matched;		/* per run: a stored row has its key */
	size_t		next;			/* the first run not passed yet */
	int64		last_stored;	/* the last stored row's product id */
	uint64		rows;
} Emitter;

static void
emit_row(Emitter *e, Datum *values, bool *nulls)
{
	MemoryContext old = MemoryContextSwitchTo(e->callerctx);

	tuplestore_putvalues(e->rsinfo->setResult, e->rsinfo->setDesc, values, nulls);
	MemoryContextSwitchTo(old);
}

static void
emit_run(Emitter *e, size_t r)
{
	Datum		values[MAX_COLUMNS];
	bool		nulls[MAX_COLUMNS];
	MemoryContext old = MemoryContextSwitchTo(e->rowctx);

	run_values(e->products, e->result, &e->runs[r], values, nulls);
	emit_row(e, values, nulls);
	MemoryContextSwitchTo(old);
	MemoryContextReset(e->rowctx);
}

/* The runs of the products before product_id, which no stored row matched. */
static void
emit_runs_before(Emitter *e, int64 product_id)
{
	for (; e->next < e->nruns && e->runs[e->next].product_id < product_id; e->next++)
		if (!e->matched[e->next])
			emit_run(e, e->next);
}

/*
 * One stored row, in product id order: the runs before it that no stored
 * row matched are new rows, emitted; the run of its key is emitted when it
 * differs from it (byte for byte: a float that compares equal in another
 * form, -0 and 0, counts as a change, a row written again, never one
 * missed); a stored row without a run is emitted as its key with the rest
 * NULL (the row goes).
 */
static void
merge_stored_row(Datum *stored, bool *stored_nulls, void *arg)
{
	Emitter    *e = (Emitter *) arg;
	int64		product_id;
	bool		upgrade;
	size_t		r;

	if ((++e->rows & 1023) == 0)
		CHECK_FOR_INTERRUPTS();
	if (stored_nulls[0] || stored_nulls[1])
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("a stored upgrade list has a NULL product_id or direction")));
	product_id = DatumGetInt64(stored[0]);
	upgrade = DatumGetBool(stored[1]);
	if (product_id < e->last_stored)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the stored upgrade lists must come in product_id order")));
	e->last_stored = product_id;

	emit_runs_before(e, product_id);
	/* a product's runs: at most one per direction, next to each other */
	for (r = e->next; r < e->nruns && e->runs[r].product_id == product_id; r++)
		if (e->runs[r].upgrade == upgrade)
			break;
	if (r < e->nruns && e->runs[r].product_id == product_id)
	{
		Datum		values[MAX_COLUMNS];
		bool		nulls[MAX_COLUMNS];
		bool		same;
		MemoryContext old = MemoryContextSwitchTo(e->rowctx);

		if (e->matched[r])
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("two stored upgrade lists of product " INT64_FORMAT " and one direction",
							product_id)));
		e->matched[r] = true;
		run_values(e->products, e->result, &e->runs[r], values, nulls);
		same = !stored_nulls[2] && DatumGetInt64(stored[2]) == DatumGetInt64(values[2]);
		for (int a = 3; same && a < UPGRADE_COLUMNS; a++)
			same = !stored_nulls[a] && datum_image_eq(values[a], stored[a], false, -1);
		if (!same)
			emit_row(e, values, nulls);
		MemoryContextSwitchTo(old);
		MemoryContextReset(e->rowctx);
	}
	else
	{
		Datum		values[MAX_COLUMNS] = {0};
		bool		nulls[MAX_COLUMNS];

		memset(nulls, true, sizeof nulls);
		values[0] = Int64GetDatum(product_id);
		values[1] = BoolGetDatum(upgrade);
		nulls[0] = nulls[1] = false;
		emit_row(e, values, nulls);
	}
}

/*
 * Emits the kept candidates: one row per product and direction, the
 * candidates as arrays in rank order.  A row per candidate made the model
 * ten times as many rows, and writing them (heap and primary key) was most
 * of its build.  Rows in primary key order (product id, then 'downsell'
 * before 'upgrade'): the key then grows at its right edge instead of at
 * random places, several times faster to build.
 *
 * With stored, a query of the lists stored so far (the columns of the
 * result, in product id order), only what changed: the rows that differ
 * from the stored row of their key or have none, and the key of every
 * stored row that has no row now, the rest NULL.  An incremental refresh
 * at 10M lines changes a few hundred of 199,720 lists; compared by a FULL
 * JOIN in SQL, both sides spilled to disk and the comparison took 1.7 s.
 */
static void
emit_result(ReturnSetInfo *rsinfo, const UpgProduct *products, UpgResult *result,
			const char *stored, MemoryContext work, MemoryContext callerctx)
{
	static const Oid types[UPGRADE_COLUMNS] = {INT8OID, BOOLOID, INT8OID, INT8ARRAYOID, BOOLARRAYOID,
	INT8ARRAYOID, INT8ARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID};
	static const char *const names[UPGRADE_COLUMNS] = {"product_id bigint", "upgrade boolean",
		"buyers bigint", "candidate_ids bigint[]", "same_group boolean[]", "paths bigint[]",
	"candidate_buyers bigint[]", "popularity float8[]", "closeness float8[]", "score float8[]"};
	Emitter		e;
	MemoryContext old = MemoryContextSwitchTo(work);

	memset(&e, 0, sizeof e);
	e.rsinfo = rsinfo;
	e.products = products;
	e.result = result;
	e.runs = result_runs(products, result, &e.nruns);
	e.rowctx = AllocSetContextCreate(work, "upsell upgrade row", ALLOCSET_DEFAULT_SIZES);
	e.callerctx = callerctx;
	e.last_stored = PG_INT64_MIN;
	e.matched = palloc_extended(sizeof(bool) * (e.nruns ? e.nruns : 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	if (stored != NULL)
		ups_stream_query(stored, UPGRADE_COLUMNS, types, names, merge_stored_row, &e);
	for (; e.next < e.nruns; e.next++)
	{
		if (!e.matched[e.next])
			emit_run(&e, e.next);
		if ((e.next & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	MemoryContextSwitchTo(old);
}

/*
 * The counts the candidates were ranked from, as rows of their own after
 * the lists' (their columns NULL): chunk, its bytes, and what was read to
 * count them ('all lines' or 'new lines', folded into counts kept before).
 */
static void
emit_counts(ReturnSetInfo *rsinfo, const UpgCounts *counts, const char *counted_from,
			MemoryContext work, MemoryContext callerctx)
{
	size_t		nchunks = upg_counts_nchunks(counts, COUNTS_CHUNK_PAIRS);
	MemoryContext old = MemoryContextSwitchTo(work);

	for (size_t k = 0; k < nchunks; k++)
	{
		Datum		values[MAX_COLUMNS] = {0};
		bool		nulls[MAX_COLUMNS];
		size_t		len = upg_counts_chunk_size(counts, COUNTS_CHUNK_PAIRS, k);
		bytea	   *state = palloc_extended(VARHDRSZ + len, MCXT_ALLOC_HUGE);

		upg_counts_write_chunk(counts, COUNTS_CHUNK_PAIRS, k, VARDATA(state));
		SET_VARSIZE(state, VARHDRSZ + len);
		memset(nulls, true, sizeof nulls);
		values[UPGRADE_COLUMNS] = Int32GetDatum((int32) k);
		values[UPGRADE_COLUMNS + 1] = PointerGetDatum(state);
		values[UPGRADE_COLUMNS + 2] = CStringGetTextDatum(counted_from);
		nulls[UPGRADE_COLUMNS] = nulls[UPGRADE_COLUMNS + 1] = nulls[UPGRADE_COLUMNS + 2] = false;
		MemoryContextSwitchTo(callerctx);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(work);
		pfree(state);
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
 * lines.  Returns the kept candidates of every product (emit_result).
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
		lines[nlines].guest = false;
		nlines++;
	}

	error = upg_compute(products, np, lines, nlines, &params, &result);
	if (error)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot rank upgrade candidates: %s", error)));
	emit_result(rsinfo, products, &result, NULL, work, callerctx);
	MemoryContextSwitchTo(callerctx);
	MemoryContextDelete(work);
	return (Datum) 0;
}

/*
 * The order lines of a pass, held by the stream (upg_stream_hold) until the
 * pass ends.  Past limit bytes (when the pass may still be split) the rest
 * of the pass is not held: its customers are read again, in two halves.
 */
typedef struct LineFeed
{
	UpgStream  *stream;
	size_t		limit;			/* 0: none */
	bool		over;			/* past limit */
	uint64		rows;
} LineFeed;

/* Customers are split at most into this many parts (a hash's low bits). */
#define MAX_PARTS_MASK	255

static void
feed_row(Datum *values, bool *nulls, void *arg)
{
	LineFeed   *f = (LineFeed *) arg;
	size_t		held;

	if ((++f->rows & 0xFFFF) == 0)
		CHECK_FOR_INTERRUPTS();
	/*
	 * (customer, order, time, product): a guest's line (no customer) is its
	 * order's, apart from the customer whose id equals the order's key; a
	 * line without product, or without customer and order, tells nothing
	 */
	if ((nulls[0] && nulls[1]) || nulls[3] || f->over)
		return;
	held = upg_stream_hold(f->stream, DatumGetInt64(values[nulls[0] ? 1 : 0]), nulls[0],
						   DatumGetInt64(values[3]),
						   !nulls[2], nulls[2] ? 0 : DatumGetTimestampTz(values[2]));
	if (f->limit > 0 && held > f->limit)
		f->over = true;
}

/*
 * One pass over the lines of the customers whose hash has the bits part
 * under mask (all of them when mask is 0), grouped by customer into the
 * stream; a pass whose lines outgrow the limit is done again as two passes,
 * one bit more each, down to MAX_PARTS_MASK + 1 parts (the last of which
 * are held whatever they take).
 */
static void
feed_part(LineFeed *f, const char *query, uint32 mask, uint32 part)
{
	static const Oid types[4] = {INT8OID, INT8OID, TIMESTAMPTZOID, INT8OID};
	static const char *const names[4] = {"customer bigint", "order_key bigint", "ordered_at timestamptz",
	"product_id bigint"};
	char	   *q = mask == 0 ? (char *) query
		: psprintf("SELECT l.customer, l.order_key, l.ordered_at, l.product_id "
				   "FROM (%s) l(customer, order_key, ordered_at, product_id) "
				   "WHERE (pg_catalog.hashint8(COALESCE(l.customer, l.order_key)) "
				   "OPERATOR(pg_catalog.&) %u) OPERATOR(pg_catalog.=) %u",
				   query, mask, part);
	size_t		limit = f->limit;

	if (mask >= MAX_PARTS_MASK)
		f->limit = 0;
	f->over = false;
	ups_stream_query(q, 4, types, names, feed_row, f);
	f->limit = limit;
	if (f->over)
	{
		elog(DEBUG1, "upsell: upgrade paths: the lines of part %u of %u outgrew upsell.itemsets_memory_limit (%zu kB), read again in two",
			 part + 1, mask + 1, f->limit / 1024);
		upg_stream_drop_held(f->stream);
		feed_part(f, query, 2 * mask + 1, part);
		feed_part(f, query, 2 * mask + 1, part + mask + 1);
		return;
	}
	upg_stream_group(f->stream);
}

/* The stored counts' chunks, loaded in order. */
typedef struct CountsLoad
{
	UpgStream  *stream;
	UpgLoad		status;
	int32		next;
} CountsLoad;

static void
load_counts_row(Datum *values, bool *nulls, void *arg)
{
	CountsLoad *l = (CountsLoad *) arg;
	bytea	   *state;

	if (l->status != UPG_LOAD_OK)
		return;
	if (nulls[0] || nulls[1] || DatumGetInt32(values[0]) != l->next)
	{
		l->status = UPG_LOAD_CORRUPT;
		return;
	}
	state = DatumGetByteaPP(values[1]);
	l->status = upg_stream_load(l->stream, (size_t) l->next, VARDATA_ANY(state), VARSIZE_ANY_EXHDR(state));
	l->next++;
}

/*
 * The changed customers' purchases when they were counted, as their
 * purchase histories have them (customer, product_ids, first_at, last_at):
 * each product's earliest and latest time, kept as two lines, which give a
 * customer exactly the products, first and last times their lines did
 * (their lines all had a time: the counts say so, upg_stream_load).  Read
 * once and held twice: to take the customers out, and to put them back
 * with their new lines (reading the histories by key took about 1 s at
 * 10M lines).
 */
typedef struct HistoryLine
{
	int64		customer;
	int64		product;
	TimestampTz time;
} HistoryLine;

typedef struct HistoryLines
{
	HistoryLine *lines;
	size_t		n;
	size_t		cap;
	size_t		limit;			/* bytes; 0: none */
	bool		unusable;		/* over the limit, or a history incomplete */
	uint64		rows;
} HistoryLines;

static void
history_line(HistoryLines *h, int64 customer, int64 product, TimestampTz time)
{
	if (h->n == h->cap)
	{
		h->cap = h->cap ? 2 * h->cap : 4096;
		h->lines = h->lines ? repalloc_huge(h->lines, h->cap * sizeof(HistoryLine))
			: palloc_extended(h->cap * sizeof(HistoryLine), MCXT_ALLOC_HUGE);
	}
	h->lines[h->n].customer = customer;
	h->lines[h->n].product = product;
	h->lines[h->n].time = time;
	h->n++;
}

static void
history_row(Datum *values, bool *nulls, void *arg)
{
	HistoryLines *h = (HistoryLines *) arg;
	Datum	   *ids,
			   *firsts,
			   *lasts;
	bool	   *idsn,
			   *firstsn,
			   *lastsn;
	int			n,
				nf,
				nl;
	int64		customer;

	if ((++h->rows & 1023) == 0)
		CHECK_FOR_INTERRUPTS();
	if (h->unusable)
		return;
	if (nulls[0] || nulls[1] || nulls[2] || nulls[3])
	{
		h->unusable = true;
		return;
	}
	customer = DatumGetInt64(values[0]);
	upsell_deconstruct(DatumGetArrayTypeP(values[1]), INT8OID, &ids, &idsn, &n);
	upsell_deconstruct(DatumGetArrayTypeP(values[2]), TIMESTAMPTZOID, &firsts, &firstsn, &nf);
	upsell_deconstruct(DatumGetArrayTypeP(values[3]), TIMESTAMPTZOID, &lasts, &lastsn, &nl);
	if (nf != n || nl != n)
		h->unusable = true;
	for (int i = 0; i < n && !h->unusable; i++)
	{
		if (idsn[i] || firstsn[i] || lastsn[i])
		{
			h->unusable = true;
			break;
		}
		history_line(h, customer, DatumGetInt64(ids[i]), DatumGetTimestampTz(firsts[i]));
		history_line(h, customer, DatumGetInt64(ids[i]), DatumGetTimestampTz(lasts[i]));
	}
	pfree(ids);
	pfree(idsn);
	pfree(firsts);
	pfree(firstsn);
	pfree(lasts);
	pfree(lastsn);
	if (h->limit > 0 && h->n * sizeof(HistoryLine) > h->limit)
		h->unusable = true;
}

/* The histories' lines, held in the stream (false: past the feed's limit). */
static bool
hold_histories(LineFeed *f, const HistoryLines *h)
{
	size_t		held = 0;

	for (size_t i = 0; i < h->n; i++)
		held = upg_stream_hold(f->stream, h->lines[i].customer, false, h->lines[i].product, true,
							   h->lines[i].time);
	return !(f->limit > 0 && held > f->limit);
}

/*
 * Folds what changed into the counts kept before (upgrade.h): counts, a
 * query of their chunks (chunk int, state bytea) in order; histories, of
 * the changed customers' purchase histories as they were counted
 * (history_row); new_lines, of the lines since (the columns of the
 * lines' query).  NULL when folded; else why not, and the stream is then to
 * be freed: what it holds is part folded.
 */
static const char *
fold_changes(LineFeed *f, const char *counts, const char *histories, const char *new_lines)
{
	static const Oid count_types[2] = {INT4OID, BYTEAOID};
	static const char *const count_names[2] = {"chunk int", "state bytea"};
	static const Oid history_types[4] = {INT8OID, INT8ARRAYOID, TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID};
	static const char *const history_names[4] = {"customer_id bigint", "product_ids bigint[]",
	"first_at timestamptz[]", "last_at timestamptz[]"};
	static const Oid line_types[4] = {INT8OID, INT8OID, TIMESTAMPTZOID, INT8OID};
	static const char *const line_names[4] = {"customer bigint", "order_key bigint", "ordered_at timestamptz",
	"product_id bigint"};
	CountsLoad	load;
	HistoryLines h;

	load.stream = f->stream;
	load.status = UPG_LOAD_OK;
	load.next = 0;
	ups_stream_query(counts, 2, count_types, count_names, load_counts_row, &load);
	if (load.status == UPG_LOAD_STALE)
		return "the counts kept are of another catalog or had customers' lines without a time";
	if (load.status != UPG_LOAD_OK || !upg_stream_loaded(f->stream))
		return "no complete counts are kept";

	memset(&h, 0, sizeof h);
	h.limit = f->limit;
	ups_stream_query(histories, 4, history_types, history_names, history_row, &h);
	if (h.unusable)
		return "the changed customers' histories are over the memory limit or incomplete";
	upg_stream_set_sign(f->stream, -1);
	if (!hold_histories(f, &h))
		return "the changed customers' histories are over the memory limit";
	upg_stream_group(f->stream);
	upg_stream_set_sign(f->stream, 1);
	f->over = !hold_histories(f, &h);
	if (h.lines)
		pfree(h.lines);
	if (!f->over)
		ups_stream_query(new_lines, 4, line_types, line_names, feed_row, f);
	if (f->over)
		return "the changed customers' lines are over the memory limit";
	upg_stream_group(f->stream);
	if (upg_stream_untimed_customer_lines(f->stream) > 0)
		return "a customer's new line has no time";
	return NULL;
}

/*
 * _upgrade_build(product_id bigint[], group_key int[], category_key int[],
 *				  price float8[], lines text, max_ratio float8, per_product int,
 *				  scan_window int, max_customer_products int, stored text)
 *
 * The same, with the order lines read from a query returning (customer
 * bigint, order_key bigint, ordered_at timestamptz, product_id bigint) in
 * any order (a line without customer is its order's, a guest's): the
 * lines are grouped by customer here (16 bytes a line, a counting sort),
 * not sorted by the query (PostgreSQL's sort of 10M lines was a third of
 * the build), within upsell.itemsets_memory_limit: beyond it the customers
 * are split into parts by a hash, each part's lines read by its own pass.
 * With stored (a query of the lists stored so far), only what changed
 * (emit_result).
 */
Datum
upsell_upgrade_build_query(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext callerctx = CurrentMemoryContext;
	MemoryContext work;
	char	   *query;
	char	   *stored = NULL;
	char	   *counts = NULL,
			   *histories = NULL,
			   *new_lines = NULL;
	bool		folded = false;
	int			np;
	UpgProduct *products;
	UpgParams	params;
	UpgResult	result;
	LineFeed	feed;
	const char *error;
	int			limit_kb = upsell_itemsets_limit_kb();

	if (PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the query of the order lines must not be NULL")));
	params_arg(fcinfo, 5, &params);
	query = text_to_cstring(PG_GETARG_TEXT_PP(4));
	if (PG_NARGS() > 9 && !PG_ARGISNULL(9))
		stored = text_to_cstring(PG_GETARG_TEXT_PP(9));
	if (PG_NARGS() > 12 && !PG_ARGISNULL(10) && !PG_ARGISNULL(11) && !PG_ARGISNULL(12))
	{
		counts = text_to_cstring(PG_GETARG_TEXT_PP(10));
		histories = text_to_cstring(PG_GETARG_TEXT_PP(11));
		new_lines = text_to_cstring(PG_GETARG_TEXT_PP(12));
	}
	InitMaterializedSRF(fcinfo, 0);
	work = AllocSetContextCreate(callerctx, "upsell upgrade build", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(work);

	products = products_arg(fcinfo, &np);
	error = upg_stream_begin(products, np, &params, &feed.stream);
	if (error)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot rank upgrade candidates: %s", error)));
	feed.limit = (size_t) limit_kb * 1024;
	feed.rows = 0;
	feed.over = false;
	if (counts != NULL)
	{
		const char *why_not = fold_changes(&feed, counts, histories, new_lines);

		if (why_not != NULL)
			upg_stream_free(feed.stream);
		else
		{
			upg_stream_finish(feed.stream, &result);
			folded = !result.inconsistent;
			/* counts that went below 0: what was kept was not counted so */
			if (!folded)
			{
				why_not = "the counts kept were not those of the histories";
				upg_result_free(&result);
			}
		}
		if (!folded)
		{
			elog(DEBUG1, "upsell: upgrade lists: every line counted: %s", why_not);
			(void) upg_stream_begin(products, np, &params, &feed.stream);
		}
	}
	if (!folded)
	{
		feed_part(&feed, query, 0, 0);
		upg_stream_finish(feed.stream, &result);
		if (result.inconsistent)
			elog(ERROR, "upgrade path counts of every line went below 0");
	}
	emit_result(rsinfo, products, &result, stored, work, callerctx);
	/* (a catalog without a priced product ranks nothing, and keeps nothing) */
	if (rsinfo->setDesc->natts >= MAX_COLUMNS && np > 0)
		emit_counts(rsinfo, &result.counts, folded ? "new lines" : "all lines", work, callerctx);
	MemoryContextSwitchTo(callerctx);
	MemoryContextDelete(work);
	return (Datum) 0;
}
