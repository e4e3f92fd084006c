/*
 * purchase_intervals.c
 *		SQL face of the interval core (src/core/intervals.c): the aggregate
 *		upsell.purchase_interval_agg(ordered_at) and the decay weight.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "intervals.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_iv_trans);
PG_FUNCTION_INFO_V1(upsell_iv_combine);
PG_FUNCTION_INFO_V1(upsell_iv_serialize);
PG_FUNCTION_INFO_V1(upsell_iv_deserialize);
PG_FUNCTION_INFO_V1(upsell_iv_final);
PG_FUNCTION_INFO_V1(upsell_decay);

/* purchase_interval_agg(ordered_at timestamptz): NULL and infinite times are skipped */
Datum
upsell_iv_trans(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = upsell_agg_context(fcinfo, "upsell_iv_trans");
	IvTimes    *state;
	MemoryContext old;

	if (PG_ARGISNULL(0))
	{
		state = MemoryContextAlloc(ctx, sizeof(IvTimes));
		iv_times_init(state);
	}
	else
		state = (IvTimes *) PG_GETARG_POINTER(0);

	if (!PG_ARGISNULL(1))
	{
		TimestampTz t = PG_GETARG_TIMESTAMPTZ(1);

		if (!TIMESTAMP_NOT_FINITE(t))
		{
			old = MemoryContextSwitchTo(ctx);
			iv_times_add(state, (int64_t) t);
			MemoryContextSwitchTo(old);
		}
	}
	PG_RETURN_POINTER(state);
}

Datum
upsell_iv_combine(PG_FUNCTION_ARGS)
{
	MemoryContext ctx = upsell_agg_context(fcinfo, "upsell_iv_combine");
	IvTimes    *a = PG_ARGISNULL(0) ? NULL : (IvTimes *) PG_GETARG_POINTER(0);
	IvTimes    *b = PG_ARGISNULL(1) ? NULL : (IvTimes *) PG_GETARG_POINTER(1);
	MemoryContext old;

	if (b == NULL)
		PG_RETURN_POINTER(a);
	old = MemoryContextSwitchTo(ctx);
	if (a == NULL)
	{
		a = palloc(sizeof(IvTimes));
		iv_times_init(a);
	}
	iv_times_append(a, b);
	MemoryContextSwitchTo(old);
	PG_RETURN_POINTER(a);
}

Datum
upsell_iv_serialize(PG_FUNCTION_ARGS)
{
	IvTimes    *state = (IvTimes *) PG_GETARG_POINTER(0);
	bytea	   *result = upsell_alloc_bytea(iv_times_serialized_size(state),
											"partial interval state", NULL);

	iv_times_serialize(state, VARDATA(result));
	PG_RETURN_BYTEA_P(result);
}

Datum
upsell_iv_deserialize(PG_FUNCTION_ARGS)
{
	bytea	   *raw = PG_GETARG_BYTEA_PP(0);
	MemoryContext ctx = upsell_agg_context(fcinfo, "upsell_iv_deserialize");
	MemoryContext old = MemoryContextSwitchTo(ctx);
	IvTimes    *state = palloc(sizeof(IvTimes));
	const char *error;

	error = iv_times_deserialize(VARDATA_ANY(raw), VARSIZE_ANY_EXHDR(raw), state);
	MemoryContextSwitchTo(old);
	if (error)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("invalid partial interval state: %s", error)));
	PG_RETURN_POINTER(state);
}

/*
 * Returns upsell.purchase_intervals (purchases, first_at, last_at,
 * median_gap_days, mean_gap_days, sd_gap_days, cv); NULL when no time was
 * seen.  Statistics that need more purchases than there were are NULL.
 */
Datum
upsell_iv_final(PG_FUNCTION_ARGS)
{
	IvTimes    *state;
	IvStats		st;
	TupleDesc	tupdesc;
	Datum		values[7];
	bool		nulls[7] = {false};

	upsell_agg_context(fcinfo, "upsell_iv_final");
	if (PG_ARGISNULL(0))
		PG_RETURN_NULL();
	state = (IvTimes *) PG_GETARG_POINTER(0);
	if (state->n == 0)
		PG_RETURN_NULL();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);

	/* sorts and dedups the state in place: harmless, the result is the same */
	iv_stats(state, (double) USECS_PER_DAY, false, &st);
	values[0] = Int64GetDatum(st.purchases);
	values[1] = TimestampTzGetDatum((TimestampTz) st.first);
	values[2] = TimestampTzGetDatum((TimestampTz) st.last);
	values[3] = Float8GetDatum(st.median_gap);
	values[4] = Float8GetDatum(st.mean_gap);
	values[5] = Float8GetDatum(st.sd_gap);
	values[6] = Float8GetDatum(st.cv);
	nulls[3] = nulls[4] = st.gaps < 1;
	nulls[5] = st.gaps < 2;
	nulls[6] = !st.has_cv;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* _decay(age_days, half_life_days) = 0.5 ^ (age / half-life), 1 for age <= 0 */
Datum
upsell_decay(PG_FUNCTION_ARGS)
{
	float8		age = PG_GETARG_FLOAT8(0);
	float8		half_life = PG_GETARG_FLOAT8(1);

	if (!(half_life > 0) || isinf(half_life))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("half-life must be a positive, finite number of days, not %g", half_life)));
	PG_RETURN_FLOAT8(iv_decay(age, half_life));
}
