/*
 * cooccurrence.c
 *		SQL face of the counting core: the aggregate upsell.cooccurrence_agg,
 *		the type upsell.cooccurrence that holds its result, and the
 *		set-returning functions that read pairs out of it.
 */
#include "postgres.h"

#include <math.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "cooccur.h"
#include "query_lines.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_cooc_trans);
PG_FUNCTION_INFO_V1(upsell_cooc_combine);
PG_FUNCTION_INFO_V1(upsell_cooc_serialize);
PG_FUNCTION_INFO_V1(upsell_cooc_deserialize);
PG_FUNCTION_INFO_V1(upsell_cooc_final);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_in);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_out);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_recv);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_send);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_merge);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_info);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_products);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_pairs);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_top_pairs);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_from_query);

/* ------------------------------------------------------------------------
 * The stored value: CoocCounts in its flat form inside a varlena.
 * ------------------------------------------------------------------------
 */

static bytea *
counts_to_varlena(const CoocCounts *counts)
{
	bytea	   *result = upsell_alloc_bytea(cooc_counts_serialized_size(counts),
											"co-occurrence counts",
											"Count fewer orders at once, or lower \"upsell.max_basket_size\".");

	cooc_counts_serialize(counts, VARDATA(result));
	return result;
}

static void
counts_from_varlena(bytea *value, CoocCounts *counts)
{
	const char *error = cooc_counts_deserialize(VARDATA_ANY(value),
												VARSIZE_ANY_EXHDR(value),
												counts);

	if (error)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid upsell.cooccurrence value: %s", error)));
}

#define PG_GETARG_COUNTS(n, counts) \
	counts_from_varlena(PG_GETARG_BYTEA_PP(n), (counts))

/* ------------------------------------------------------------------------
 * The aggregate
 * ------------------------------------------------------------------------
 */

/*
 * cooccurrence_agg(order_key bigint, product_id bigint [, quantity numeric])
 * Lines with a NULL id or a quantity <= 0 are counted as skipped.
 */
Datum
upsell_cooc_trans(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = upsell_agg_context(fcinfo, "upsell_cooc_trans");
	CoocLines  *state;
	MemoryContext old;
	bool		skip;

	if (PG_ARGISNULL(0))
	{
		state = MemoryContextAlloc(ctx, sizeof(CoocLines));
		cooc_lines_init(state);
	}
	else
		state = (CoocLines *) PG_GETARG_POINTER(0);

	skip = PG_ARGISNULL(1) || PG_ARGISNULL(2);
	if (!skip && PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		Numeric		q = PG_GETARG_NUMERIC(3);

		skip = numeric_is_nan(q) ||
			DatumGetBool(DirectFunctionCall2(numeric_le, NumericGetDatum(q),
											 NumericGetDatum(int64_to_numeric(0))));
	}

	if (skip)
		state->skipped++;
	else
	{
		old = MemoryContextSwitchTo(ctx);
		cooc_lines_add(state, PG_GETARG_INT64(1), PG_GETARG_INT64(2));
		MemoryContextSwitchTo(old);
	}
	PG_RETURN_POINTER(state);
}

Datum
upsell_cooc_combine(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = upsell_agg_context(fcinfo, "upsell_cooc_combine");
	CoocLines  *a = PG_ARGISNULL(0) ? NULL : (CoocLines *) PG_GETARG_POINTER(0);
	CoocLines  *b = PG_ARGISNULL(1) ? NULL : (CoocLines *) PG_GETARG_POINTER(1);
	MemoryContext old;

	if (b == NULL)
		PG_RETURN_POINTER(a);
	old = MemoryContextSwitchTo(ctx);
	if (a == NULL)
	{
		a = palloc(sizeof(CoocLines));
		cooc_lines_init(a);
	}
	cooc_lines_append(a, b);
	MemoryContextSwitchTo(old);
	PG_RETURN_POINTER(a);
}

Datum
upsell_cooc_serialize(PG_FUNCTION_ARGS)
{
	CoocLines  *state = (CoocLines *) PG_GETARG_POINTER(0);
	bytea	   *result;

	/* Sorting first drops repeats, so less crosses to the leader. */
	cooc_lines_compact(state);
	result = upsell_alloc_bytea(cooc_lines_serialized_size(state),
								"partial co-occurrence state",
								"Lower max_parallel_workers_per_gather or count fewer lines at once.");
	cooc_lines_serialize(state, VARDATA(result));
	PG_RETURN_BYTEA_P(result);
}

Datum
upsell_cooc_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *raw = PG_GETARG_BYTEA_PP(0);
	MemoryContext ctx = upsell_agg_context(fcinfo, "upsell_cooc_deserialize");
	MemoryContext old = MemoryContextSwitchTo(ctx);
	CoocLines  *state = palloc(sizeof(CoocLines));
	const char *error;

	error = cooc_lines_deserialize(VARDATA_ANY(raw), VARSIZE_ANY_EXHDR(raw), state);
	MemoryContextSwitchTo(old);
	if (error)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid partial co-occurrence state: %s", error)));
	PG_RETURN_POINTER(state);
}

Datum
upsell_cooc_final(PG_FUNCTION_ARGS)
{
	CoocLines  *state;
	CoocLines	empty;
	CoocCounts	counts;
	MemoryContext work,
				old;
	bytea	   *result;

	upsell_agg_context(fcinfo, "upsell_cooc_final");
	if (PG_ARGISNULL(0))
	{
		cooc_lines_init(&empty);
		state = &empty;
	}
	else
		state = (CoocLines *) PG_GETARG_POINTER(0);

	/* The count's scratch memory goes away with this context. */
	work = AllocSetContextCreate(CurrentMemoryContext, "upsell co-occurrence count",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	cooc_count(state, upsell_max_basket_size, &counts);
	MemoryContextSwitchTo(old);
	result = counts_to_varlena(&counts);
	MemoryContextDelete(work);
	PG_RETURN_BYTEA_P(result);
}

/* ------------------------------------------------------------------------
 * Type I/O: hex text (like bytea), validated on the way in.
 * ------------------------------------------------------------------------
 */

static bytea *
validated_copy(const char *data, size_t len)
{
	CoocCounts	counts;
	MemoryContext work = AllocSetContextCreate(CurrentMemoryContext,
											   "upsell cooccurrence check",
											   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(work);
	const char *error = cooc_counts_deserialize(data, len, &counts);
	bytea	   *result;

	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	if (error)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid upsell.cooccurrence value: %s", error)));
	result = palloc(len + VARHDRSZ);
	SET_VARSIZE(result, len + VARHDRSZ);
	memcpy(VARDATA(result), data, len);
	return result;
}

Datum
upsell_cooccurrence_in(PG_FUNCTION_ARGS)
{
	char	   *str = PG_GETARG_CSTRING(0);
	size_t		len = strlen(str);
	char	   *buf;
	size_t		n;

	if (len < 2 || str[0] != '\\' || str[1] != 'x')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid input syntax for type upsell.cooccurrence"),
				 errdetail("The value must be hexadecimal, starting with \"\\x\".")));
	buf = palloc((len - 2) / 2 + 1);
	n = hex_decode(str + 2, len - 2, buf);
	PG_RETURN_BYTEA_P(validated_copy(buf, n));
}

Datum
upsell_cooccurrence_out(PG_FUNCTION_ARGS)
{
	bytea	   *value = PG_GETARG_BYTEA_PP(0);
	size_t		len = VARSIZE_ANY_EXHDR(value);
	char	   *out = palloc(len * 2 + 3);
	size_t		n;

	out[0] = '\\';
	out[1] = 'x';
	n = hex_encode(VARDATA_ANY(value), len, out + 2);
	out[n + 2] = '\0';
	PG_RETURN_CSTRING(out);
}

Datum
upsell_cooccurrence_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	bytea	   *result = validated_copy(buf->data + buf->cursor, buf->len - buf->cursor);

	buf->cursor = buf->len;
	PG_RETURN_BYTEA_P(result);
}

Datum
upsell_cooccurrence_send(PG_FUNCTION_ARGS)
{
	bytea	   *value = PG_GETARG_BYTEA_P_COPY(0);

	PG_RETURN_BYTEA_P(value);
}

/* cooccurrence_merge(a, b): the counts of a and b added, for incremental refresh */
Datum
upsell_cooccurrence_merge(PG_FUNCTION_ARGS)
{
	CoocCounts	a,
				b,
				sum;
	MemoryContext work = AllocSetContextCreate(CurrentMemoryContext,
											   "upsell cooccurrence merge",
											   ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(work);
	bytea	   *result;

	PG_GETARG_COUNTS(0, &a);
	PG_GETARG_COUNTS(1, &b);
	/*
	 * Every count of a valid value is at most its orders (deserialization
	 * checks it), so orders that fit keep every sum in range.
	 */
	if (a.orders > PG_INT64_MAX - b.orders || a.skipped_lines > PG_INT64_MAX - b.skipped_lines)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("cooccurrence_merge: the sum would count more than 2^63 - 1 orders or lines")));
	cooc_counts_merge(&sum, &a, &b);
	MemoryContextSwitchTo(old);
	result = counts_to_varlena(&sum);
	MemoryContextDelete(work);
	PG_RETURN_BYTEA_P(result);
}

/* ------------------------------------------------------------------------
 * Reading a value
 * ------------------------------------------------------------------------
 */

Datum
upsell_cooccurrence_info(PG_FUNCTION_ARGS)
{
	CoocCounts	c;
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {0};

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	PG_GETARG_COUNTS(0, &c);
	values[0] = Int64GetDatum(c.orders);
	values[1] = Int64GetDatum(c.nitems);
	values[2] = Int64GetDatum((int64) c.npairs);
	values[3] = Int64GetDatum(c.skipped_lines);
	values[4] = Int64GetDatum(c.big_orders);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
upsell_cooccurrence_products(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CoocCounts	c;
	uint32		i;

	InitMaterializedSRF(fcinfo, 0);
	PG_GETARG_COUNTS(0, &c);
	for (i = 0; i < c.nitems; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {0};

		values[0] = Int64GetDatum(c.item_ids[i]);
		values[1] = Int64GetDatum(c.item_counts[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

static void
check_thresholds(int32 min_count, float8 min_support, float8 min_confidence)
{
	if (min_count < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_count must not be negative: %d", min_count)));
	if (!(min_support >= 0 && min_support <= 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_support must be between 0 and 1: %g", min_support)));
	if (!(min_confidence >= 0 && min_confidence <= 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_confidence must be between 0 and 1: %g", min_confidence)));
}

static void
put_pair_row(ReturnSetInfo *rsinfo, const CoocCounts *c, uint32 x, uint32 y,
			 int64 together, float8 min_confidence)
{
	CoocMetrics m;
	Datum		values[13];
	bool		nulls[13] = {0};

	cooc_metrics(together, c->item_counts[x], c->item_counts[y], c->orders, &m);
	if (m.confidence < min_confidence)
		return;
	values[0] = Int64GetDatum(c->item_ids[x]);
	values[1] = Int64GetDatum(c->item_ids[y]);
	values[2] = Int64GetDatum(together);
	values[3] = Int64GetDatum(c->item_counts[x]);
	values[4] = Int64GetDatum(c->item_counts[y]);
	values[5] = Int64GetDatum(c->orders);
	values[6] = Float8GetDatum(m.support);
	values[7] = Float8GetDatum(m.confidence);
	values[8] = Float8GetDatum(m.lift);
	values[9] = Float8GetDatum(m.leverage);
	values[10] = Float8GetDatum(m.conviction);
	values[11] = Float8GetDatum(m.jaccard);
	values[12] = Float8GetDatum(m.score);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * pairs(state, min_count, min_support, min_confidence): one row per ordered
 * pair (both directions of every co-occurring pair) with its measures.
 */
Datum
upsell_cooccurrence_pairs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		min_count = PG_GETARG_INT32(1);
	float8		min_support = PG_GETARG_FLOAT8(2);
	float8		min_confidence = PG_GETARG_FLOAT8(3);
	CoocCounts	c;
	size_t		i;

	check_thresholds(min_count, min_support, min_confidence);
	InitMaterializedSRF(fcinfo, 0);
	PG_GETARG_COUNTS(0, &c);
	if (c.skipped_lines > 0)
		ereport(NOTICE,
				(errmsg("skipped %lld order lines with a NULL order or product id or a quantity <= 0",
						(long long) c.skipped_lines)));
	if (c.big_orders > 0)
		ereport(NOTICE,
				(errmsg("%lld orders with more than %d products counted for their products but not for pairs",
						(long long) c.big_orders, upsell_max_basket_size),
				 errhint("Raise \"upsell.max_basket_size\" to count them.")));
	for (i = 0; i < c.npairs; i++)
	{
		const CoocPair *p = &c.pairs[i];

		if (p->count < min_count || (double) p->count / c.orders < min_support)
			continue;
		put_pair_row(rsinfo, &c, p->a, p->b, p->count, min_confidence);
		put_pair_row(rsinfo, &c, p->b, p->a, p->count, min_confidence);
		if ((i & 0xffff) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	return (Datum) 0;
}

typedef struct Neighbour
{
	uint32		other;
	int64		together;
	double		score;
} Neighbour;

static int
neighbour_cmp(const void *pa, const void *pb)
{
	const Neighbour *a = pa;
	const Neighbour *b = pb;

	if (a->score != b->score)
		return a->score > b->score ? -1 : 1;
	/* dense indexes follow product ids, so this breaks ties by product id */
	return a->other < b->other ? -1 : (a->other > b->other ? 1 : 0);
}

/*
 * top_pairs(state, per_product, min_count): for each product, its best
 * per_product complements by score, ties broken by product id.  This is the
 * serving model: a cart lookup reads at most per_product rows per item.
 */
Datum
upsell_cooccurrence_top_pairs(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		per_product = PG_GETARG_INT32(1);
	int32		min_count = PG_GETARG_INT32(2);
	CoocCounts	c;
	size_t	   *start;
	Neighbour  *adj;
	size_t		i;
	uint32		x;

	if (per_product < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("per_product must be positive: %d", per_product)));
	check_thresholds(min_count, 0, 0);
	InitMaterializedSRF(fcinfo, 0);
	PG_GETARG_COUNTS(0, &c);

	/* Adjacency lists in one array (CSR): both directions of every pair. */
	start = palloc0_array(size_t, (size_t) c.nitems + 2);
	for (i = 0; i < c.npairs; i++)
		if (c.pairs[i].count >= min_count)
		{
			start[c.pairs[i].a + 2]++;
			start[c.pairs[i].b + 2]++;
		}
	for (x = 0; x < c.nitems; x++)
		start[x + 2] += start[x + 1];
	adj = palloc_extended(sizeof(Neighbour) * (start[c.nitems + 1] + 1), MCXT_ALLOC_HUGE);
	for (i = 0; i < c.npairs; i++)
	{
		const CoocPair *p = &c.pairs[i];

		if (p->count < min_count)
			continue;
		adj[start[p->a + 1]++] = (Neighbour)
		{
			p->b, p->count, cooc_score(p->count, c.item_counts[p->a])
		};
		adj[start[p->b + 1]++] = (Neighbour)
		{
			p->a, p->count, cooc_score(p->count, c.item_counts[p->b])
		};
	}

	for (x = 0; x < c.nitems; x++)
	{
		Neighbour  *list = adj + start[x];
		size_t		n = start[x + 1] - start[x];

		CHECK_FOR_INTERRUPTS();
		qsort(list, n, sizeof(Neighbour), neighbour_cmp);
		for (i = 0; i < n && i < (size_t) per_product; i++)
		{
			CoocMetrics m;
			Datum		values[6];
			bool		nulls[6] = {0};

			cooc_metrics(list[i].together, c.item_counts[x],
						 c.item_counts[list[i].other], c.orders, &m);
			values[0] = Int64GetDatum(c.item_ids[x]);
			values[1] = Int64GetDatum(c.item_ids[list[i].other]);
			values[2] = Int64GetDatum(list[i].together);
			values[3] = Float8GetDatum(m.score);
			values[4] = Float8GetDatum(m.confidence);
			values[5] = Float8GetDatum(m.lift);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}

/* ------------------------------------------------------------------------
 * Counting the result of any query: (order id, product id [, tenant id])
 * ------------------------------------------------------------------------
 */

/*
 * _cooccurrence_from_query(query): one co-occurrence value per tenant.  Order
 * ids of a non-integer type are hashed from their text form (64 bits), the
 * same way upsell.order_key() does it for registered orders.
 */
Datum
upsell_cooccurrence_from_query(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	MemoryContext callerctx = CurrentMemoryContext;
	MemoryContext work;
	TenantLines *tenants;
	bool		has_tenant;
	int			ntenants;
	int			i;

	InitMaterializedSRF(fcinfo, 0);
	work = AllocSetContextCreate(callerctx, "upsell query count", ALLOCSET_DEFAULT_SIZES);

	tenants = ups_query_lines(query, true, work, &ntenants, &has_tenant);

	for (i = 0; i < ntenants; i++)
	{
		CoocCounts	counts;
		Datum		values[2];
		bool		nulls[2] = {false, false};
		MemoryContext old = MemoryContextSwitchTo(work);

		cooc_count(&tenants[i].lines, upsell_max_basket_size, &counts);
		MemoryContextSwitchTo(callerctx);
		values[0] = Int64GetDatum(tenants[i].tenant);
		values[1] = PointerGetDatum(counts_to_varlena(&counts));
		nulls[0] = !has_tenant;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(old);
	}
	MemoryContextDelete(work);
	return (Datum) 0;
}
