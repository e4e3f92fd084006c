/*
 * cooccurrence_sharded.c
 *		upsell.cooccurrence_sharded_agg: co-occurrence counting whose partial
 *		state is the pair counts of whole orders, for tables where every
 *		order's lines lie in one partition (Citus tables distributed by order
 *		or by tenant).
 *
 * Citus pushes an aggregate's partial aggregation to the workers only when
 * its transition type is a real type, sent as text through the type's output
 * and input functions (worker_partial_agg / coord_combine_agg).  So the
 * transition type here is upsell.cooccurrence itself, and each shard's
 * partial state is its pair counts: the coordinator adds them with
 * upsell.cooccurrence_merge.  upsell.cooccurrence_agg, whose partial states
 * are lines, stays the aggregate for everything else (PostgreSQL's parallel
 * workers split an order's lines).
 *
 * While lines stream in, the state is an expanded object (so the executor
 * neither copies nor flattens it per line) holding the lines not yet counted
 * and the flat counts of those counted before.  It is counted when flattened:
 * by the output function on a Citus worker, by the final function otherwise.
 */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/expandeddatum.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "cooccur.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_cooc_sharded_trans);
PG_FUNCTION_INFO_V1(upsell_cooc_sharded_final);

typedef struct ShardedState
{
	ExpandedObjectHeader hdr;
	CoocLines	lines;			/* not yet counted */
	bytea	   *counted;		/* flat counts of the lines counted before, or
								 * NULL */
} ShardedState;

static Size sharded_get_flat_size(ExpandedObjectHeader *eohptr);
static void sharded_flatten_into(ExpandedObjectHeader *eohptr,
								 void *result, Size allocated_size);

static const ExpandedObjectMethods sharded_methods = {
	sharded_get_flat_size,
	sharded_flatten_into
};

/*
 * Counts the pending lines and adds the counts to those counted before, so
 * that st->counted holds everything.
 */
static void
sharded_count(ShardedState *st)
{
	MemoryContext work,
				old;
	CoocCounts	fresh,
				before,
				sum;
	const CoocCounts *all = &fresh;
	bytea	   *flat;

	if (st->counted != NULL && st->lines.n == 0 && st->lines.skipped == 0)
		return;
	work = AllocSetContextCreate(CurrentMemoryContext, "upsell sharded count",
								 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	cooc_count(&st->lines, upsell_max_basket_size, &fresh);
	if (st->counted != NULL)
	{
		const char *error = cooc_counts_deserialize(VARDATA(st->counted),
													VARSIZE(st->counted) - VARHDRSZ,
													&before);

		if (error)
			elog(ERROR, "invalid co-occurrence counts in an aggregate state: %s", error);
		cooc_counts_merge(&sum, &before, &fresh);
		all = &sum;
	}
	MemoryContextSwitchTo(st->hdr.eoh_context);
	flat = upsell_alloc_bytea(cooc_counts_serialized_size(all), "co-occurrence counts",
							  "Count fewer orders at once, or lower \"upsell.max_basket_size\".");
	cooc_counts_serialize(all, VARDATA(flat));
	if (st->counted != NULL)
		pfree(st->counted);
	st->counted = flat;
	/* the lines are counted: start an empty batch */
	if (st->lines.lines != NULL)
		pfree(st->lines.lines);
	cooc_lines_init(&st->lines);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(work);
}

static Size
sharded_get_flat_size(ExpandedObjectHeader *eohptr)
{
	ShardedState *st = (ShardedState *) eohptr;

	sharded_count(st);
	return VARSIZE(st->counted);
}

static void
sharded_flatten_into(ExpandedObjectHeader *eohptr, void *result, Size allocated_size)
{
	ShardedState *st = (ShardedState *) eohptr;

	Assert(st->counted != NULL && allocated_size == VARSIZE(st->counted));
	memcpy(result, st->counted, allocated_size);
}

/* A new state in a context of its own under parent, holding flat (or none). */
static ShardedState *
sharded_new(MemoryContext parent, bytea *flat)
{
	MemoryContext ctx = AllocSetContextCreate(parent, "upsell sharded co-occurrence",
											  ALLOCSET_DEFAULT_SIZES);
	ShardedState *st = MemoryContextAlloc(ctx, sizeof(ShardedState));

	EOH_init_header(&st->hdr, &sharded_methods, ctx);
	cooc_lines_init(&st->lines);
	st->counted = NULL;
	if (flat != NULL)
	{
		st->counted = MemoryContextAlloc(ctx, VARSIZE_ANY(flat));
		memcpy(st->counted, flat, VARSIZE_ANY(flat));
	}
	return st;
}

/*
 * cooccurrence_sharded_agg(order_key bigint, product_id bigint [, quantity
 * numeric]): lines with a NULL id or a quantity <= 0 are counted as skipped,
 * as by upsell.cooccurrence_agg.
 */
Datum
upsell_cooc_sharded_trans(PG_FUNCTION_ARGS)
{
	MemoryContext aggctx = upsell_agg_context(fcinfo, "upsell_cooc_sharded_trans");
	ShardedState *st;
	bool		skip;

	if (PG_ARGISNULL(0))
		st = sharded_new(aggctx, NULL);
	else if (DatumIsReadWriteExpandedObject(PG_GETARG_DATUM(0), false, -1) &&
			 DatumGetEOHP(PG_GETARG_DATUM(0))->eoh_methods == &sharded_methods)
		st = (ShardedState *) DatumGetEOHP(PG_GETARG_DATUM(0));
	else
	{
		/* a flat value (an initial condition, or a copy): continue from it */
		bytea	   *flat = PG_GETARG_BYTEA_P(0);

		st = sharded_new(aggctx, flat);
	}

	skip = PG_ARGISNULL(1) || PG_ARGISNULL(2);
	if (!skip && PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		Numeric		q = PG_GETARG_NUMERIC(3);

		skip = numeric_is_nan(q) ||
			DatumGetBool(DirectFunctionCall2(numeric_le, NumericGetDatum(q),
											 NumericGetDatum(int64_to_numeric(0))));
	}
	if (skip)
		st->lines.skipped++;
	else
	{
		MemoryContext old = MemoryContextSwitchTo(st->hdr.eoh_context);

		cooc_lines_add(&st->lines, PG_GETARG_INT64(1), PG_GETARG_INT64(2));
		MemoryContextSwitchTo(old);
	}
	PG_RETURN_DATUM(EOHPGetRWDatum(&st->hdr));
}

/* The counts of the state (empty counts when no line came in). */
Datum
upsell_cooc_sharded_final(PG_FUNCTION_ARGS)
{
	ShardedState *st;

	upsell_agg_context(fcinfo, "upsell_cooc_sharded_final");
	if (!PG_ARGISNULL(0))
		PG_RETURN_BYTEA_P(PG_GETARG_BYTEA_P_COPY(0));
	st = sharded_new(CurrentMemoryContext, NULL);
	sharded_count(st);
	PG_RETURN_BYTEA_P(st->counted);
}
