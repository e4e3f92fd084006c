/*
 * cooccurrence.c
 *		SQL face of the counting core: the aggregate upsell.cooccurrence_agg,
 *		the type upsell.cooccurrence that holds its result, and the
 *		set-returning functions that read pairs out of it.
 */
#include "postgres.h"

#include <math.h>

#include "access/detoast.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "cooccur.h"
#include "query_lines.h"
#include "query_stream.h"
#include "ups_host.h"
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
PG_FUNCTION_INFO_V1(upsell_cooccurrence_top_lists);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_category_pairs);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_pair_moments);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_chunks);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_chunks_of);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_merge_chunks);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_from_query);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_sum_info);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_sum_products);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_sum_pairs);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_sum_top_pairs);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_sum_top_lists);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_sum_category_pairs);
PG_FUNCTION_INFO_V1(upsell_cooccurrence_sum_pair_moments);

static void deconstruct_arg(ArrayType *a, Oid type, const char *what, Datum **values,
							bool **nulls, int *n);

/* ------------------------------------------------------------------------
 * The stored value: CoocCounts in its flat form inside a varlena.
 * ------------------------------------------------------------------------
 */

static void
raise_if_error(const char *error, const char *what)
{
	if (error)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cannot count %s: %s", what, error)));
}

/*
 * The value of counts.  The flat form cooc_count wrote (with room for the
 * varlena header in front) becomes the value itself, without a copy.
 */
static bytea *
counts_to_varlena(CoocCounts *counts)
{
	bytea	   *result;

	if (counts->flat)
	{
		if (counts->flat_len + VARHDRSZ > MaxAllocSize)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("co-occurrence counts of %zu bytes exceed the maximum value size",
							counts->flat_len),
					 errhint("Count fewer orders at once, or lower \"upsell.max_basket_size\".")));
		StaticAssertStmt(COOC_FLAT_HEADROOM == VARHDRSZ, "flat form headroom is a varlena header");
		result = (bytea *) counts->flat;
		SET_VARSIZE(result, counts->flat_len + VARHDRSZ);
		/* the value owns the buffer now; the pairs still point into it */
		counts->flat = NULL;
		counts->borrowed = true;
		return result;
	}
	result = upsell_alloc_bytea(cooc_counts_serialized_size(counts),
								"co-occurrence counts",
								"Count fewer orders at once, or lower \"upsell.max_basket_size\".");
	cooc_counts_serialize(counts, VARDATA(result));
	return result;
}

/*
 * The counts of a value, read in place: the value is detoasted (into the
 * current memory context) with a 4-byte header, so its pair arrays are
 * 4-byte aligned and need no copy.
 */
static void
counts_from_varlena(bytea *value, CoocCounts *counts)
{
	const char *error = cooc_counts_deserialize(VARDATA(value), VARSIZE(value) - VARHDRSZ,
												true, counts);

	if (error)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid upsell.cooccurrence value: %s", error)));
}

#define PG_GETARG_COUNTS(n, counts) \
	counts_from_varlena(PG_GETARG_BYTEA_P(n), (counts))

/*
 * Stored counts as read, kept for the rest of the transaction.  A tenant's
 * builders read the same stored chunk one after another (the totals'
 * moments, the substitutes' category pairs, the pair lists), and each read
 * of a 10M-line shop's single chunk fetched its 100 MB from TOAST again
 * (0.4-0.8 s a read).  A value stored out of line is named by its TOAST
 * pointer, whose value id no other value of that TOAST table gets while
 * this transaction can see the value's row: ids are drawn from a counter
 * and checked against every row of the TOAST table's index, dead ones
 * included, and the rows this transaction deleted stay until it ends.
 * (An aborted subtransaction's rows do not: what it read is forgotten.)
 *
 * A kept value is never freed before the transaction ends, since a reader
 * may still hold it (a set-returning function reads the pairs in place
 * across its calls); values are kept while they total at most
 * KEPT_VALUES_MAX (a chunk of the default upsell.cooccurrence_chunk_pairs
 * is 128 MB, its delta a quarter of it at most), and read as before
 * beyond that.
 */
#define KEPT_VALUES_MAX ((Size) 256 * 1024 * 1024)

typedef struct KeptValue
{
	struct varatt_external pointer;
	bytea	   *value;
} KeptValue;

typedef struct KeptValues
{
	MemoryContext cxt;			/* TopTransactionContext's child */
	KeptValue  *values;
	int			n;
	int			cap;
	Size		bytes;
	bool		forgotten;		/* a subtransaction aborted: none is looked up */
} KeptValues;

static KeptValues *kept_values = NULL;
static bool kept_values_callback = false;

static void
forget_kept_values(void *arg)
{
	kept_values = NULL;
}

/* (the memory stays until the transaction's end: a reader may hold it) */
static void
kept_values_subxact(SubXactEvent event, SubTransactionId mySubid,
					SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && kept_values != NULL)
		kept_values->forgotten = true;
}

/* The detoasted value of a stored counts argument, kept when it may be. */
static bytea *
stored_value(Datum datum)
{
	struct varlena *attr = (struct varlena *) DatumGetPointer(datum);
	struct varatt_external pointer;
	KeptValues *kept;
	MemoryContext old;
	bytea	   *value;

	if (!VARATT_IS_EXTERNAL_ONDISK(attr))
		return DatumGetByteaP(datum);
	VARATT_EXTERNAL_GET_POINTER(pointer, attr);
	if (kept_values != NULL && !kept_values->forgotten)
		for (int i = 0; i < kept_values->n; i++)
			if (memcmp(&kept_values->values[i].pointer, &pointer, sizeof(pointer)) == 0)
				return kept_values->values[i].value;
	if ((kept_values != NULL && kept_values->forgotten) ||
		(Size) pointer.va_rawsize > KEPT_VALUES_MAX - (kept_values ? kept_values->bytes : 0))
		return DatumGetByteaP(datum);
	if (!kept_values_callback)
	{
		RegisterSubXactCallback(kept_values_subxact, NULL);
		kept_values_callback = true;
	}
	if (kept_values == NULL)
	{
		MemoryContext cxt = AllocSetContextCreate(TopTransactionContext, "upsell stored counts",
												  ALLOCSET_DEFAULT_SIZES);
		MemoryContextCallback *cb = MemoryContextAlloc(cxt, sizeof(MemoryContextCallback));

		cb->func = forget_kept_values;
		cb->arg = NULL;
		MemoryContextRegisterResetCallback(cxt, cb);
		kept = MemoryContextAllocZero(cxt, sizeof(KeptValues));
		kept->cxt = cxt;
		kept_values = kept;
	}
	kept = kept_values;
	old = MemoryContextSwitchTo(kept->cxt);
	value = DatumGetByteaP(datum);
	if (kept->n == kept->cap)
	{
		kept->cap = kept->cap ? kept->cap * 2 : 4;
		kept->values = kept->values ? repalloc(kept->values, kept->cap * sizeof(KeptValue))
			: palloc(kept->cap * sizeof(KeptValue));
	}
	kept->values[kept->n].pointer = pointer;
	kept->values[kept->n].value = value;
	kept->n++;
	kept->bytes += VARSIZE(value);
	MemoryContextSwitchTo(old);
	return value;
}

/*
 * The header and products of a counts value without its pairs, fetching
 * only that prefix of a stored value (cooccurrence_chunks stores them
 * uncompressed, so a slice reads only its own TOAST chunks): a 10M-line
 * shop's value is 100 MB, its products 1.6 MB.  A value of version 1.0's
 * form is read whole.
 */
static void
counts_items_from_datum(Datum value, CoocCounts *counts)
{
	Size		len = toast_raw_datum_size(value) - VARHDRSZ;
	bytea	   *head = DatumGetByteaPSlice(value, 0, COOC_COUNTS_HEADER);
	size_t		need = 0;
	bytea	   *prefix;
	const char *error;

	if (VARSIZE_ANY_EXHDR(head) >= COOC_COUNTS_HEADER)
		need = cooc_counts_items_len(VARDATA_ANY(head));
	if (need == 0 || need > len)
	{
		counts_from_varlena(DatumGetByteaP(value), counts);
		return;
	}
	prefix = DatumGetByteaPSlice(value, 0, need);
	error = cooc_counts_deserialize_items(VARDATA_ANY(prefix), VARSIZE_ANY_EXHDR(prefix), len, counts);
	if (error)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid upsell.cooccurrence value: %s", error)));
}

/*
 * The counts a reader reads.  Every function reading stored counts has a
 * sum form (upsell._cooccurrence_*_sum, what the builders call) whose first
 * four arguments are (chunk, delta, lo, hi): a stored chunk and the delta
 * stored beside it (NULL: none), summed in for its rows of the chunk's
 * range [lo, hi) (NULL: unbounded) as the reader reads them (CoocSum: no
 * merged copy is built); its plain form's first argument is the counts
 * alone.  The one reader of base + delta: every model sees the sum exactly.
 * Returns the index of the first argument after the counts.  With
 * items_only the chunk's pairs are not fetched (the products and totals
 * alone are read), a delta's always are.
 */
typedef struct StoredCounts
{
	CoocCounts	base;
	CoocCounts	delta;
	CoocSum		sum;
} StoredCounts;

#define SUM_FORM_ARGS 4

static int
stored_counts_of_args(FunctionCallInfo fcinfo, bool sum_form, bool items_only,
					  StoredCounts *s)
{
	int64		lo,
				hi;
	int			i;

	/* a sum form is not STRICT (a NULL delta or bound means none): */
	for (i = sum_form ? SUM_FORM_ARGS : 1; i < PG_NARGS(); i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument %d must not be NULL", i + 1)));
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the counts must not be NULL")));
	if (items_only)
		counts_items_from_datum(PG_GETARG_DATUM(0), &s->base);
	else
		counts_from_varlena(stored_value(PG_GETARG_DATUM(0)), &s->base);
	if (!sum_form || PG_ARGISNULL(1))
	{
		(void) cooc_sum_init(&s->sum, &s->base, NULL, NULL, NULL);
		return sum_form ? SUM_FORM_ARGS : 1;
	}
	counts_from_varlena(stored_value(PG_GETARG_DATUM(1)), &s->delta);
	lo = PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2);
	hi = PG_ARGISNULL(3) ? 0 : PG_GETARG_INT64(3);
	raise_if_error(cooc_sum_init(&s->sum, &s->base, &s->delta,
								 PG_ARGISNULL(2) ? NULL : &lo,
								 PG_ARGISNULL(3) ? NULL : &hi),
				   "a chunk and its delta");
	return SUM_FORM_ARGS;
}

/* ------------------------------------------------------------------------
 * The aggregate
 *
 * The transition state collects raw lines.  A parallel worker sorts them
 * into orders before it hands its state over (serialize), so the state that
 * crosses to the leader is a CoocPartial: every order's products (4 bytes a
 * line), which let the leader's combine count an order split between
 * workers exactly once, and the orders' pair counts where counting them in
 * the worker pays (few products for many orders, see cooc_partial_count);
 * otherwise the leader counts the pairs of the united orders at the end.
 * Without workers the final function counts the lines directly.
 * ------------------------------------------------------------------------
 */

typedef struct CoocAggState
{
	CoocLines	lines;			/* raw lines not counted yet */
	bool		has_partial;
	CoocPartial partial;		/* orders counted already */
} CoocAggState;

static CoocAggState *
new_agg_state(MemoryContext ctx)
{
	CoocAggState *state = MemoryContextAllocZero(ctx, sizeof(CoocAggState));

	cooc_lines_init(&state->lines);
	return state;
}

/*
 * Folds the state's raw lines into its partial counts, in the aggregate's
 * memory context.
 */
static void
count_into_partial(CoocAggState *state, MemoryContext ctx, CoocPartialMode mode)
{
	MemoryContext old = MemoryContextSwitchTo(ctx);
	CoocPartial counted,
				combined;

	if (state->lines.n > 0 || state->lines.skipped > 0 || !state->has_partial)
	{
		raise_if_error(cooc_partial_count(&state->lines, upsell_max_basket_size,
										  mode, &counted),
					   "order lines");
		ups_free(state->lines.lines);
		cooc_lines_init(&state->lines);
		if (state->has_partial)
		{
			raise_if_error(cooc_partial_combine(&combined, &state->partial, &counted,
												upsell_max_basket_size),
						   "partial states");
			cooc_partial_free(&state->partial);
			cooc_partial_free(&counted);
			state->partial = combined;
		}
		else
			state->partial = counted;
		state->has_partial = true;
	}
	MemoryContextSwitchTo(old);
}

/*
 * Whether a quantity numeric is > 0 (not NaN).  Order lines mostly repeat a
 * few quantities, so the answer for the last value's bytes is remembered
 * (fn_extra): no numeric comparison per line.
 */
typedef struct QuantityCache
{
	int			len;			/* 0: empty */
	bool		positive;
	char		bytes[16];
} QuantityCache;

static bool
quantity_positive(FunctionCallInfo fcinfo, Datum q)
{
	QuantityCache *cache = fcinfo->flinfo->fn_extra;
	struct varlena *raw = (struct varlena *) DatumGetPointer(q);
	int			len = VARATT_IS_EXTENDED(raw) && !VARATT_IS_SHORT(raw) ? -1 : (int) VARSIZE_ANY_EXHDR(raw);
	Numeric		num;
	bool		positive;

	if (cache == NULL)
		cache = fcinfo->flinfo->fn_extra =
			MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(QuantityCache));
	if (len > 0 && len == cache->len && memcmp(VARDATA_ANY(raw), cache->bytes, len) == 0)
		return cache->positive;
	num = DatumGetNumeric(q);
	positive = !numeric_is_nan(num) &&
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(num),
										  NumericGetDatum(int64_to_numeric(0)))) > 0;
	if (len > 0 && len <= (int) sizeof(cache->bytes))
	{
		cache->len = len;
		memcpy(cache->bytes, VARDATA_ANY(raw), len);
		cache->positive = positive;
	}
	return positive;
}

/*
 * cooccurrence_agg(order_key bigint, product_id bigint [, quantity numeric])
 * Lines with a NULL id or a quantity <= 0 are counted as skipped.
 */
Datum
upsell_cooc_trans(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = upsell_agg_context(fcinfo, "upsell_cooc_trans");
	CoocAggState *state;
	MemoryContext old;
	bool		skip;

	if (PG_ARGISNULL(0))
		state = new_agg_state(ctx);
	else
		state = (CoocAggState *) PG_GETARG_POINTER(0);

	skip = PG_ARGISNULL(1) || PG_ARGISNULL(2);
	if (!skip && PG_NARGS() > 3 && !PG_ARGISNULL(3))
		skip = !quantity_positive(fcinfo, PG_GETARG_DATUM(3));

	if (skip)
		state->lines.skipped++;
	else
	{
		old = MemoryContextSwitchTo(ctx);
		cooc_lines_add(&state->lines, PG_GETARG_INT64(1), PG_GETARG_INT64(2));
		MemoryContextSwitchTo(old);
	}
	PG_RETURN_POINTER(state);
}

Datum
upsell_cooc_combine(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = upsell_agg_context(fcinfo, "upsell_cooc_combine");
	CoocAggState *a = PG_ARGISNULL(0) ? NULL : (CoocAggState *) PG_GETARG_POINTER(0);
	CoocAggState *b = PG_ARGISNULL(1) ? NULL : (CoocAggState *) PG_GETARG_POINTER(1);
	MemoryContext old;
	CoocPartial combined;

	if (b == NULL)
		PG_RETURN_POINTER(a);
	if (a == NULL)
	{
		/* the first state to arrive becomes the accumulator */
		a = new_agg_state(ctx);
		old = MemoryContextSwitchTo(ctx);
		cooc_lines_append(&a->lines, &b->lines);
		MemoryContextSwitchTo(old);
		a->has_partial = b->has_partial;
		a->partial = b->partial;
		PG_RETURN_POINTER(a);
	}
	if (!a->has_partial && !b->has_partial)
	{
		/* raw lines on both sides (no serialization in between): keep them raw */
		old = MemoryContextSwitchTo(ctx);
		cooc_lines_append(&a->lines, &b->lines);
		MemoryContextSwitchTo(old);
		PG_RETURN_POINTER(a);
	}
	count_into_partial(a, ctx, COOC_PARTIAL_AUTO);
	count_into_partial(b, ctx, COOC_PARTIAL_AUTO);
	old = MemoryContextSwitchTo(ctx);
	raise_if_error(cooc_partial_combine(&combined, &a->partial, &b->partial,
										upsell_max_basket_size),
				   "partial states");
	cooc_partial_free(&a->partial);
	a->partial = combined;

	/*
	 * b, a state deserialized from a parallel worker (or the leader's own),
	 * is in a now: free its orders rather than hold them until the end of
	 * the query next to the united ones (a leader's memory then peaks at
	 * about the united orders, not at every worker's copy too)
	 */
	cooc_partial_free(&b->partial);
	b->has_partial = false;
	MemoryContextSwitchTo(old);
	PG_RETURN_POINTER(a);
}

Datum
upsell_cooc_serialize(PG_FUNCTION_ARGS)
{
	CoocAggState *state = (CoocAggState *) PG_GETARG_POINTER(0);
	MemoryContext ctx = upsell_agg_context(fcinfo, "upsell_cooc_serialize");
	bytea	   *result;

	/* the worker counts its own lines: the leader only combines */
	count_into_partial(state, ctx, COOC_PARTIAL_AUTO);
	result = upsell_alloc_bytea(cooc_partial_serialized_size(&state->partial),
								"partial co-occurrence state",
								"Lower max_parallel_workers_per_gather or count fewer lines at once.");
	cooc_partial_serialize(&state->partial, VARDATA(result));
	PG_RETURN_BYTEA_P(result);
}

Datum
upsell_cooc_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *raw = PG_GETARG_BYTEA_PP(0);
	MemoryContext ctx = upsell_agg_context(fcinfo, "upsell_cooc_deserialize");
	CoocAggState *state = new_agg_state(ctx);
	MemoryContext old = MemoryContextSwitchTo(ctx);
	const char *error;

	error = cooc_partial_deserialize(VARDATA_ANY(raw), VARSIZE_ANY_EXHDR(raw), &state->partial);
	MemoryContextSwitchTo(old);
	if (error)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid partial co-occurrence state: %s", error)));
	state->has_partial = true;
	PG_RETURN_POINTER(state);
}

Datum
upsell_cooc_final(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = upsell_agg_context(fcinfo, "upsell_cooc_final");
	CoocAggState *state;

	if (PG_ARGISNULL(0))
		state = new_agg_state(CurrentMemoryContext);
	else
		state = (CoocAggState *) PG_GETARG_POINTER(0);

	/*
	 * The raw lines (16 bytes each) become orders of product indexes (4
	 * bytes a line) and are freed before the pairs are counted, so the lines
	 * and the pairs are never held together.  With parallel workers, what
	 * the leader has raw is folded into their orders; the pairs of the
	 * united orders are counted unless the workers counted them.
	 */
	count_into_partial(state, ctx,
					   state->has_partial ? COOC_PARTIAL_AUTO : COOC_PARTIAL_ORDERS);
	raise_if_error(cooc_partial_finish(&state->partial, upsell_max_basket_size),
				   "order lines");
	/* the orders are not combined after the final function: free them now */
	ups_free(state->partial.order_keys);
	ups_free(state->partial.order_start);
	ups_free(state->partial.products);
	state->partial.order_keys = NULL;
	state->partial.order_start = NULL;
	state->partial.products = NULL;
	state->partial.norders = 0;
	PG_RETURN_BYTEA_P(counts_to_varlena(&state->partial.counts));
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
	const char *error = cooc_counts_deserialize(data, len, false, &counts);
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
	raise_if_error(cooc_counts_merge(&sum, &a, &b), "the sum of two values");
	MemoryContextSwitchTo(old);
	result = counts_to_varlena(&sum);
	MemoryContextDelete(work);
	PG_RETURN_BYTEA_P(result);
}

/* ------------------------------------------------------------------------
 * Chunks: a tenant's counts stored as bounded values (src/core/cooc_chunks.c)
 * ------------------------------------------------------------------------
 */

/*
 * Puts the counts c into the tuplestore as chunks of at most max_pairs pairs
 * (a product with more pairs alone): rows of natts columns, the first ones
 * from prefix, then the chunk's number, the id of its range's first product
 * with pairs (NULL for counts without pairs) and the chunk, then the rest of
 * prefix.  One chunk is held at a time.
 */
#define CHUNK_MAX_COLS 8

static void
put_chunks(ReturnSetInfo *rsinfo, const CoocCounts *c, int64 max_pairs,
		   const Datum *prefix, const bool *prefix_nulls, int at, int natts)
{
	uint32	   *bounds;
	size_t		n,
				i;
	Datum		values[CHUNK_MAX_COLS];
	bool		nulls[CHUNK_MAX_COLS];

	Assert(natts <= CHUNK_MAX_COLS && at + 3 <= natts);
	memcpy(values, prefix, natts * sizeof(Datum));
	memcpy(nulls, prefix_nulls, natts * sizeof(bool));
	n = cooc_chunk_bounds(c, (size_t) max_pairs, &bounds);
	for (i = 0; i < n; i++)
	{
		bytea	   *chunk = upsell_alloc_bytea(cooc_rows_serialized_size(c, bounds[i], bounds[i + 1]),
											   "a chunk of co-occurrence counts",
											   "Lower \"upsell.cooccurrence_chunk_pairs\".");

		CHECK_FOR_INTERRUPTS();
		cooc_rows_serialize(c, bounds[i], bounds[i + 1], VARDATA(chunk));
		values[at] = Int32GetDatum((int32) i);
		nulls[at] = false;
		nulls[at + 1] = c->row[bounds[i + 1]] == c->row[bounds[i]];
		values[at + 1] = nulls[at + 1] ? (Datum) 0 : Int64GetDatum(c->item_ids[bounds[i]]);
		values[at + 2] = PointerGetDatum(chunk);
		nulls[at + 2] = false;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		pfree(chunk);
	}
	pfree(bounds);
}

static void
check_max_pairs(int64 max_pairs)
{
	if (max_pairs < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_pairs must be positive: " INT64_FORMAT, max_pairs)));
}

/*
 * cooccurrence_chunks(state, max_pairs): the counts as chunks of at most
 * max_pairs pairs (a product with more pairs alone), each a value with
 * every product and the pairs of a range of products; first_product is the
 * id of the range's first product with pairs (NULL for counts without pairs).
 */
Datum
upsell_cooccurrence_chunks(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		max_pairs = PG_GETARG_INT64(1);
	CoocCounts	c;
	Datum		none[3] = {0, 0, 0};
	bool		no_nulls[3] = {false, false, false};

	check_max_pairs(max_pairs);
	InitMaterializedSRF(fcinfo, 0);
	PG_GETARG_COUNTS(0, &c);
	put_chunks(rsinfo, &c, max_pairs, none, no_nulls, 0, 3);
	return (Datum) 0;
}

/*
 * _cooccurrence_chunks_of(query, max_pairs): the chunks of the counts that
 * query returns, rows (tenant_id bigint, state upsell.cooccurrence,
 * max_ordered_at timestamptz, max_order_key bigint) such as
 * upsell._pair_counts_sql() writes: per row, its chunks (as
 * cooccurrence_chunks) with the row's other columns.  The query runs to
 * completion without a cursor (parallel workers may count, see
 * query_stream.h), and each row's counts are split as they come, where the
 * aggregate left them: the whole counts are never copied, and are freed
 * with the query.
 */
typedef struct ChunksOf
{
	ReturnSetInfo *rsinfo;
	int64		max_pairs;
} ChunksOf;

static void
chunks_of_row(Datum *values, bool *nulls, void *arg)
{
	ChunksOf   *co = arg;
	CoocCounts	c;
	Datum		row[6];
	bool		row_nulls[6];
	MemoryContext work = AllocSetContextCreate(CurrentMemoryContext, "upsell chunks of a count",
											   ALLOCSET_DEFAULT_SIZES),
				old;

	if (nulls[1])
		return;
	row[0] = values[0];
	row_nulls[0] = nulls[0];
	row[4] = values[2];
	row_nulls[4] = nulls[2];
	row[5] = values[3];
	row_nulls[5] = nulls[3];
	old = MemoryContextSwitchTo(work);
	counts_from_varlena(DatumGetByteaP(values[1]), &c);
	put_chunks(co->rsinfo, &c, co->max_pairs, row, row_nulls, 1, 6);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
}

Datum
upsell_cooccurrence_chunks_of(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ChunksOf	co;
	Oid			types[4];
	static const char *const names[4] = {
		"tenant_id bigint", "state upsell.cooccurrence",
		"max_ordered_at timestamp with time zone", "max_order_key bigint"
	};

	co.max_pairs = PG_GETARG_INT64(1);
	check_max_pairs(co.max_pairs);
	InitMaterializedSRF(fcinfo, 0);
	co.rsinfo = rsinfo;
	types[0] = INT8OID;
	/* the state column's type is this function's result's own */
	types[1] = TupleDescAttr(rsinfo->setDesc, 3)->atttypid;
	types[2] = TIMESTAMPTZOID;
	types[3] = INT8OID;
	ups_stream_query(query, 4, types, names, chunks_of_row, &co);
	return (Datum) 0;
}

/*
 * _cooccurrence_merge_chunks(chunk, added, lo, hi, max_pairs): the chunk of
 * the products [lo, hi) (NULL: unbounded) after the counts added (every
 * product's count of added, and its pairs of that range), split as
 * cooccurrence_chunks splits a value; of chunk alone when added is NULL.
 * Each chunk is serialized straight from the merged counts: the merged value
 * is never built (at 10M lines a 100 MB copy, and a parse of it, in every
 * incremental refresh).
 */
Datum
upsell_cooccurrence_merge_chunks(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	CoocCounts	chunk,
				added,
				sum;
	int64		lo,
				hi,
				max_pairs;
	Datum		none[3] = {0, 0, 0};
	bool		no_nulls[3] = {false, false, false};
	bytea	   *stored;
	MemoryContext work,
				old;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("the chunk and max_pairs must not be NULL")));
	max_pairs = PG_GETARG_INT64(4);
	check_max_pairs(max_pairs);
	lo = PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2);
	hi = PG_ARGISNULL(3) ? 0 : PG_GETARG_INT64(3);
	InitMaterializedSRF(fcinfo, 0);
	work = AllocSetContextCreate(CurrentMemoryContext, "upsell cooccurrence merge chunks",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	stored = PG_GETARG_BYTEA_P(0);
	counts_from_varlena(stored, &chunk);
	if (PG_ARGISNULL(1))
		put_chunks(rsinfo, &chunk, max_pairs, none, no_nulls, 0, 3);
	else
	{
		PG_GETARG_COUNTS(1, &added);
		raise_if_error(cooc_counts_merge_rows(&sum, &chunk, &added,
											  PG_ARGISNULL(2) ? NULL : &lo,
											  PG_ARGISNULL(3) ? NULL : &hi),
					   "the sum of a chunk and new counts");
		/*
		 * The sum holds arrays of its own: the chunk as read (detoasted, 100
		 * MB at 10M lines) is not needed while the sum's chunks are written.
		 */
		if ((Pointer) stored != DatumGetPointer(PG_GETARG_DATUM(0)))
			pfree(stored);
		put_chunks(rsinfo, &sum, max_pairs, none, no_nulls, 0, 3);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
	return (Datum) 0;
}

/* ------------------------------------------------------------------------
 * Reading a value
 * ------------------------------------------------------------------------
 */

/*
 * info(state), and _cooccurrence_info_sum(chunk, delta, lo, hi) without the
 * pairs (those of a chunk with a delta are counted as they are read:
 * _cooccurrence_pair_moments_sum; here only the products are fetched).
 */
static Datum
info_of(FunctionCallInfo fcinfo, bool sum_form)
{
	StoredCounts s;
	TupleDesc	tupdesc;
	Datum		values[5];
	bool		nulls[5] = {0};
	int			n = 0;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	stored_counts_of_args(fcinfo, sum_form, true, &s);
	values[n++] = Int64GetDatum(s.sum.orders);
	values[n++] = Int64GetDatum(s.sum.nitems);
	if (!sum_form)
		values[n++] = Int64GetDatum((int64) s.base.npairs);
	values[n++] = Int64GetDatum(s.sum.skipped_lines);
	values[n++] = Int64GetDatum(s.sum.big_orders);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
upsell_cooccurrence_info(PG_FUNCTION_ARGS)
{
	return info_of(fcinfo, false);
}

Datum
upsell_cooccurrence_sum_info(PG_FUNCTION_ARGS)
{
	return info_of(fcinfo, true);
}

/* products(state) and _cooccurrence_products_sum(chunk, delta, lo, hi) */
static Datum
products_of(FunctionCallInfo fcinfo, bool sum_form)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StoredCounts s;
	uint32		i;

	InitMaterializedSRF(fcinfo, 0);
	stored_counts_of_args(fcinfo, sum_form, true, &s);
	for (i = 0; i < s.sum.nitems; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {0};

		values[0] = Int64GetDatum(s.sum.item_ids[i]);
		values[1] = Int64GetDatum(s.sum.item_counts[i]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

Datum
upsell_cooccurrence_products(PG_FUNCTION_ARGS)
{
	return products_of(fcinfo, false);
}

Datum
upsell_cooccurrence_sum_products(PG_FUNCTION_ARGS)
{
	return products_of(fcinfo, true);
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

/*
 * Listing the pairs, one row per call.  Rows stream to the caller when it
 * calls the function in a select list (frequently_bought_together does); in
 * FROM, PostgreSQL collects them itself.  Thresholds are checked before a
 * row is built, and a row is built by copying a template tuple and setting
 * its 13 fixed-width fields in place: every column is int8 or float8, never
 * NULL, so each sits at a fixed offset.
 */
#define PAIR_COLUMNS 13

typedef struct PairCursor
{
	StoredCounts s;
	int32		min_count;
	float8		min_support;
	float8		min_confidence;
	uint32		a;				/* current product */
	bool		in_row;			/* row holds a's pairs from the next on */
	CoocSumRow	row;
	bool		reverse;		/* next: the pair (partner -> a) */
	uint32		partner;		/* that pair */
	uint32		together;
	HeapTuple	template;
} PairCursor;

static HeapTuple
pair_template(TupleDesc desc)
{
	Datum		values[PAIR_COLUMNS] = {0};
	bool		nulls[PAIR_COLUMNS] = {0};
	int			i;

	if (desc->natts != PAIR_COLUMNS)
		elog(ERROR, "cooccurrence_pairs must return %d columns", PAIR_COLUMNS);
	for (i = 0; i < PAIR_COLUMNS; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if ((att->atttypid != INT8OID && att->atttypid != FLOAT8OID) ||
			att->attlen != 8 || !att->attbyval || att->attalign != TYPALIGN_DOUBLE)
			elog(ERROR, "cooccurrence_pairs must return int8 and float8 columns");
	}
	return heap_form_tuple(desc, values, nulls);
}

/* A copy of the template with the measures of (x -> y). */
static HeapTuple
pair_tuple(PairCursor *cur, uint32 x, uint32 y, int64 together, const CoocMetrics *m)
{
	const CoocSum *c = &cur->s.sum;
	HeapTuple	t = palloc(HEAPTUPLESIZE + cur->template->t_len);
	char	   *data;
	int64		ints[6];
	float8		floats[7];

	memcpy(t, cur->template, HEAPTUPLESIZE);
	t->t_data = (HeapTupleHeader) ((char *) t + HEAPTUPLESIZE);
	memcpy(t->t_data, cur->template->t_data, cur->template->t_len);
	data = (char *) t->t_data + t->t_data->t_hoff;
	ints[0] = c->item_ids[x];
	ints[1] = c->item_ids[y];
	ints[2] = together;
	ints[3] = c->item_counts[x];
	ints[4] = c->item_counts[y];
	ints[5] = c->orders;
	floats[0] = m->support;
	floats[1] = m->confidence;
	floats[2] = m->lift;
	floats[3] = m->leverage;
	floats[4] = m->conviction;
	floats[5] = m->jaccard;
	floats[6] = m->score;
	memcpy(data, ints, sizeof(ints));
	memcpy(data + sizeof(ints), floats, sizeof(floats));
	return t;
}

/*
 * pairs(state, min_count, min_support, min_confidence): one row per ordered
 * pair (both directions of every co-occurring pair) with its measures; and
 * _cooccurrence_pairs_sum(chunk, delta, lo, hi, min_count, min_support,
 * min_confidence), those of a stored chunk with its delta.
 */
static Datum
pairs_of(FunctionCallInfo fcinfo, bool sum_form)
{
	FuncCallContext *funcctx;
	PairCursor *cur;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;
		TupleDesc	desc;
		int			at;

		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		cur = palloc0(sizeof(PairCursor));
		at = stored_counts_of_args(fcinfo, sum_form, false, &cur->s);
		check_thresholds(PG_GETARG_INT32(at), PG_GETARG_FLOAT8(at + 1), PG_GETARG_FLOAT8(at + 2));
		cur->template = pair_template(BlessTupleDesc(desc));
		cur->min_count = PG_GETARG_INT32(at);
		cur->min_support = PG_GETARG_FLOAT8(at + 1);
		cur->min_confidence = PG_GETARG_FLOAT8(at + 2);
		MemoryContextSwitchTo(old);
		funcctx->user_fctx = cur;
		if (cur->s.sum.skipped_lines > 0)
			ereport(NOTICE,
					(errmsg("skipped %lld order lines with a NULL order, product or tenant id or a quantity <= 0",
							(long long) cur->s.sum.skipped_lines)));
		if (cur->s.sum.big_orders > 0)
			ereport(NOTICE,
					(errmsg("%lld orders with more than %d products counted for their products but not for pairs",
							(long long) cur->s.sum.big_orders, upsell_max_basket_size),
					 errhint("Raise \"upsell.max_basket_size\" to count them.")));
	}
	funcctx = SRF_PERCALL_SETUP();
	cur = funcctx->user_fctx;
	for (; cur->a < cur->s.sum.nitems; cur->a++, cur->in_row = false)
	{
		const CoocSum *c = &cur->s.sum;

		if ((cur->a & 0x3ff) == 0)
			CHECK_FOR_INTERRUPTS();
		if (!cur->in_row)
		{
			cooc_sum_row(c, cur->a, &cur->row);
			cur->in_row = true;
			cur->reverse = false;
		}
		for (;;)
		{
			uint32		x = cur->a,
						y;
			int64		together;
			CoocMetrics m;

			if (!cur->reverse)
			{
				if (!cooc_sum_next(&cur->row, &cur->partner, &cur->together))
					break;
				/* the pair's thresholds, for both directions at once */
				if (cur->together < cur->min_count ||
					(double) cur->together / c->orders < cur->min_support)
					continue;
				y = cur->partner;
				cur->reverse = true;
			}
			else
			{
				/* then the same pair the other way round */
				x = cur->partner;
				y = cur->a;
				cur->reverse = false;
			}
			together = cur->together;
			if ((double) together / c->item_counts[x] < cur->min_confidence)
				continue;
			cooc_metrics(together, c->item_counts[x], c->item_counts[y], c->orders, &m);
			SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum(pair_tuple(cur, x, y, together, &m)));
		}
	}
	SRF_RETURN_DONE(funcctx);
}

Datum
upsell_cooccurrence_pairs(PG_FUNCTION_ARGS)
{
	return pairs_of(fcinfo, false);
}

Datum
upsell_cooccurrence_sum_pairs(PG_FUNCTION_ARGS)
{
	return pairs_of(fcinfo, true);
}

/*
 * The arguments (counts, per_product, min_count, rare_orders, products) of
 * top_pairs and _cooccurrence_top_lists (or of their sum forms) checked,
 * the result set begun, the counts read into s, and each product's best
 * pairs ranked by the core (*n of them, product by product): of the
 * products listed (the forms with the products argument), or of every
 * product.
 */
static CoocTop *
top_pairs_of_args(FunctionCallInfo fcinfo, bool sum_form, StoredCounts *s, size_t *n)
{
	int			at = stored_counts_of_args(fcinfo, sum_form, false, s);
	int32		per_product,
				min_count;
	int64		rare_orders;
	bool	   *only = NULL;

	per_product = PG_GETARG_INT32(at);
	min_count = PG_GETARG_INT32(at + 1);
	rare_orders = PG_GETARG_INT64(at + 2);
	if (per_product < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("per_product must be positive: %d", per_product)));
	check_thresholds(min_count, 0, 0);
	if (rare_orders < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("rare_orders must not be negative: " INT64_FORMAT, rare_orders)));
	InitMaterializedSRF(fcinfo, 0);
	if (PG_NARGS() > at + 3)
	{
		Datum	   *ids;
		bool	   *nulls;
		int			nids,
					i;

		deconstruct_arg(PG_GETARG_ARRAYTYPE_P(at + 3), INT8OID, "products", &ids, &nulls, &nids);
		only = palloc0(Max(s->sum.nitems, 1) * sizeof(bool));
		for (i = 0; i < nids; i++)
		{
			int64		x = nulls[i] ? -1 : cooc_sum_item_index(&s->sum, DatumGetInt64(ids[i]));

			if (x >= 0)
				only[x] = true;
		}
	}
	return cooc_sum_top_pairs(&s->sum, per_product, min_count, rare_orders, only, n);
}

/*
 * top_pairs(state, per_product, min_count, rare_orders): for each product,
 * its best per_product complements by score, ties broken by product id,
 * among the pairs seen in min_count orders or more (any pair, for a product
 * in fewer than rare_orders orders).  This is the serving model: a cart
 * lookup reads at most per_product rows per item.  The core keeps a bounded
 * heap per product, so memory follows the output, not the number of pairs.
 */
static Datum
top_pairs_of(FunctionCallInfo fcinfo, bool sum_form)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StoredCounts s;
	const CoocSum *c = &s.sum;
	CoocTop    *top;
	size_t		n,
				i;

	top = top_pairs_of_args(fcinfo, sum_form, &s, &n);
	for (i = 0; i < n; i++)
	{
		CoocMetrics m;
		Datum		values[6];
		bool		nulls[6] = {0};

		cooc_metrics(top[i].together, c->item_counts[top[i].product],
					 c->item_counts[top[i].other], c->orders, &m);
		values[0] = Int64GetDatum(c->item_ids[top[i].product]);
		values[1] = Int64GetDatum(c->item_ids[top[i].other]);
		values[2] = Int64GetDatum(top[i].together);
		values[3] = Float8GetDatum(m.score);
		values[4] = Float8GetDatum(m.confidence);
		values[5] = Float8GetDatum(m.lift);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		if ((i & 0xffff) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	return (Datum) 0;
}

Datum
upsell_cooccurrence_top_pairs(PG_FUNCTION_ARGS)
{
	return top_pairs_of(fcinfo, false);
}

Datum
upsell_cooccurrence_sum_top_pairs(PG_FUNCTION_ARGS)
{
	return top_pairs_of(fcinfo, true);
}

/*
 * _cooccurrence_top_lists(state, per_product, min_count, rare_orders
 * [, products]): the pairs of top_pairs, one row per product: its partners
 * as arrays in rank order (score descending, then partner id), with the
 * orders containing both, the score and the confidence at the same
 * positions.  What pair_list_model stores: a row per product instead of a
 * row per pair (3M rows of a 10M-line shop, whose heap and 3-column primary
 * key were most of the model's build).  Nothing that depends on another
 * product's counts or on the shop's (lift): a product's row changes only
 * when its own orders do, so an incremental refresh rewrites just the
 * products of the new orders.
 */
static Datum
top_lists_of(FunctionCallInfo fcinfo, bool sum_form)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StoredCounts s;
	const CoocSum *c = &s.sum;
	int32		per_product;
	CoocTop    *top;
	size_t		n,
				i,
				end;
	Datum	   *others,
			   *together,
			   *score,
			   *confidence;
	MemoryContext rowctx,
				old;

	top = top_pairs_of_args(fcinfo, sum_form, &s, &n);
	per_product = PG_GETARG_INT32(sum_form ? SUM_FORM_ARGS : 1);
	others = palloc(per_product * sizeof(Datum));
	together = palloc(per_product * sizeof(Datum));
	score = palloc(per_product * sizeof(Datum));
	confidence = palloc(per_product * sizeof(Datum));
	rowctx = AllocSetContextCreate(CurrentMemoryContext, "upsell top lists row", ALLOCSET_DEFAULT_SIZES);
	/* product by product, best first (cooc_top_pairs) */
	for (i = 0; i < n; i = end)
	{
		uint32		product = top[i].product;
		int			k = 0;
		Datum		values[5];
		bool		nulls[5] = {0};

		CHECK_FOR_INTERRUPTS();
		for (end = i; end < n && top[end].product == product; end++)
		{
			CoocMetrics m;

			if (k == per_product)
				elog(ERROR, "product " INT64_FORMAT " has more than %d top pairs",
					 c->item_ids[product], per_product);
			cooc_metrics(top[end].together, c->item_counts[product],
						 c->item_counts[top[end].other], c->orders, &m);
			others[k] = Int64GetDatum(c->item_ids[top[end].other]);
			together[k] = Int64GetDatum(top[end].together);
			score[k] = Float8GetDatum(m.score);
			confidence[k] = Float8GetDatum(m.confidence);
			k++;
		}
		old = MemoryContextSwitchTo(rowctx);
		values[0] = Int64GetDatum(c->item_ids[product]);
		values[1] = PointerGetDatum(construct_array(others, k, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[2] = PointerGetDatum(construct_array(together, k, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[3] = PointerGetDatum(construct_array(score, k, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[4] = PointerGetDatum(construct_array(confidence, k, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		MemoryContextSwitchTo(old);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextReset(rowctx);
	}
	MemoryContextDelete(rowctx);
	return (Datum) 0;
}

Datum
upsell_cooccurrence_top_lists(PG_FUNCTION_ARGS)
{
	return top_lists_of(fcinfo, false);
}

Datum
upsell_cooccurrence_sum_top_lists(PG_FUNCTION_ARGS)
{
	return top_lists_of(fcinfo, true);
}

/*
 * The elements of a one-dimensional array of a fixed-width type, or an
 * error naming the argument.
 */
static void
deconstruct_arg(ArrayType *a, Oid type, const char *what, Datum **values, bool **nulls, int *n)
{
	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	upsell_deconstruct(a, type, values, nulls, n);
}

/*
 * _cooccurrence_category_pairs(state, product_ids, category_keys): per
 * category key (0 .. max key), the order counts summed over the pairs whose
 * two products have that key, one row per key with pairs; and a row with a
 * NULL key holding the sum over all pairs.  One pass over the pairs (the
 * category model's input): no row per pair.
 */
static Datum
category_pairs_of(FunctionCallInfo fcinfo, bool sum_form)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StoredCounts s;
	int			at;
	Datum	   *id_values,
			   *key_values;
	bool	   *id_nulls,
			   *key_nulls;
	int			nids,
				nkeys_given,
				i;
	int64	   *ids;
	int32	   *keys;
	int32		nkeys = 0;
	int64	   *within;
	int64		total;
	const char *error;
	Datum		values[2];
	bool		nulls[2] = {false, false};

	at = stored_counts_of_args(fcinfo, sum_form, false, &s);
	deconstruct_arg(PG_GETARG_ARRAYTYPE_P(at), INT8OID, "product_ids", &id_values, &id_nulls, &nids);
	deconstruct_arg(PG_GETARG_ARRAYTYPE_P(at + 1), INT4OID, "category_keys", &key_values, &key_nulls, &nkeys_given);
	if (nids != nkeys_given)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("product_ids and category_keys must have the same length: %d and %d",
						nids, nkeys_given)));
	ids = palloc((nids + 1) * sizeof(int64));
	keys = palloc((nids + 1) * sizeof(int32));
	for (i = 0; i < nids; i++)
	{
		if (id_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("product_ids must not contain NULL")));
		ids[i] = DatumGetInt64(id_values[i]);
		keys[i] = key_nulls[i] ? -1 : DatumGetInt32(key_values[i]);
		/* keys number the categories densely: at most one per product */
		if (!key_nulls[i] && (keys[i] < 0 || keys[i] >= nids))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("category key %d is out of range", keys[i]),
					 errdetail("Category keys lie between 0 and the number of products minus 1 (%d).",
							   nids - 1)));
		if (keys[i] >= nkeys)
			nkeys = keys[i] + 1;
	}
	within = palloc((nkeys + 1) * sizeof(int64));
	error = cooc_sum_category_pairs(&s.sum, ids, keys, nids, nkeys, within, &total);
	if (error)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot sum the pairs within categories: %s", error)));

	InitMaterializedSRF(fcinfo, 0);
	for (i = 0; i < nkeys; i++)
		if (within[i] > 0)
		{
			values[0] = Int32GetDatum(i);
			values[1] = Int64GetDatum(within[i]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	nulls[0] = true;
	values[0] = (Datum) 0;
	values[1] = Int64GetDatum(total);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

Datum
upsell_cooccurrence_category_pairs(PG_FUNCTION_ARGS)
{
	return category_pairs_of(fcinfo, false);
}

Datum
upsell_cooccurrence_sum_category_pairs(PG_FUNCTION_ARGS)
{
	return category_pairs_of(fcinfo, true);
}

/*
 * _cooccurrence_pair_moments(state): over the ordered pairs of the value's
 * pairs, the sums of together^2 and of together * product_count *
 * other_count (the cooccurrence model's pair_dispersion).  One pass over the
 * pairs, no row per pair.
 */
static Datum
pair_moments_of(FunctionCallInfo fcinfo, bool sum_form)
{
	StoredCounts s;
	TupleDesc	tupdesc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	double		t2,
				tnn;
	size_t		npairs;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	stored_counts_of_args(fcinfo, sum_form, false, &s);
	cooc_sum_pair_moments(&s.sum, &t2, &tnn, &npairs);
	values[0] = Float8GetDatum(t2);
	values[1] = Float8GetDatum(tnn);
	/* the sum form counts the summed pairs too, in the same pass */
	values[2] = Int64GetDatum((int64) npairs);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

Datum
upsell_cooccurrence_pair_moments(PG_FUNCTION_ARGS)
{
	return pair_moments_of(fcinfo, false);
}

Datum
upsell_cooccurrence_sum_pair_moments(PG_FUNCTION_ARGS)
{
	return pair_moments_of(fcinfo, true);
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

		raise_if_error(cooc_count(&tenants[i].lines, upsell_max_basket_size, &counts),
					   "order lines");
		MemoryContextSwitchTo(callerctx);
		values[0] = Int64GetDatum(tenants[i].tenant);
		values[1] = PointerGetDatum(counts_to_varlena(&counts));
		nulls[0] = !has_tenant;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		/* one tenant's counts at a time */
		pfree(DatumGetPointer(values[1]));
		cooc_counts_free(&counts);
		MemoryContextSwitchTo(old);
	}
	MemoryContextDelete(work);
	return (Datum) 0;
}
