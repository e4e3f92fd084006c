/*
 * query_stream.c
 *		Rows of a query to a callback, see query_stream.h.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "tcop/dest.h"
#include "utils/builtins.h"

#include "query_stream.h"

typedef struct StreamReceiver
{
	DestReceiver pub;
	UpsColumnsFn columns;
	UpsRowFn	fn;
	void	   *arg;
	MemoryContext ctx;			/* the caller's */
	uint64		rows;
} StreamReceiver;

static void
stream_startup(DestReceiver *self, int operation, TupleDesc desc)
{
	StreamReceiver *r = (StreamReceiver *) self;

	if (r->columns)
		r->columns(desc, r->arg);
}

static bool
stream_receive(TupleTableSlot *slot, DestReceiver *self)
{
	StreamReceiver *r = (StreamReceiver *) self;
	MemoryContext old = MemoryContextSwitchTo(r->ctx);

	slot_getallattrs(slot);
	r->fn(slot->tts_values, slot->tts_isnull, r->arg);
	MemoryContextSwitchTo(old);
	if ((++r->rows & 0xffff) == 0)
		CHECK_FOR_INTERRUPTS();
	return true;
}

static void
stream_nothing(DestReceiver *self)
{
}

void
ups_run_query(const char *query, bool read_only, UpsColumnsFn columns, UpsRowFn fn, void *arg)
{
	StreamReceiver r;
	SPIPlanPtr	plan;
	SPIExecuteOptions opts;
	int			rc;

	memset(&r, 0, sizeof r);
	r.pub.receiveSlot = stream_receive;
	r.pub.rStartup = stream_startup;
	r.pub.rShutdown = stream_nothing;
	r.pub.rDestroy = stream_nothing;
	/* DestNone would make SPI report the SELECT as a utility command */
	r.pub.mydest = DestTuplestore;
	r.columns = columns;
	r.fn = fn;
	r.arg = arg;
	r.ctx = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* parallel workers may scan for it, as for a plain SELECT */
	plan = SPI_prepare_cursor(query, 0, NULL, CURSOR_OPT_PARALLEL_OK);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	/* a single statement that returns rows (checked before it runs) */
	if (!SPI_is_cursor_plan(plan))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query must return rows")));
	memset(&opts, 0, sizeof opts);
	opts.read_only = read_only;
	opts.dest = (DestReceiver *) &r;
	rc = SPI_execute_plan_extended(plan, &opts);
	/* (rows returned by anything but a SELECT: INSERT ... RETURNING) */
	if (rc != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query must be a SELECT")));
	SPI_finish();
}

typedef struct TypedStream
{
	int			natts;
	const Oid  *types;
	const char *const *names;
	UpsRowFn	fn;
	void	   *arg;
} TypedStream;

static void
typed_columns(TupleDesc desc, void *arg)
{
	TypedStream *t = (TypedStream *) arg;

	if (desc->natts != t->natts)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the query must return %d columns, not %d", t->natts, desc->natts)));
	for (int i = 0; i < t->natts; i++)
		if (TupleDescAttr(desc, i)->atttypid != t->types[i])
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column %d of the query must be %s, not %s",
							i + 1, t->names[i], format_type_be(TupleDescAttr(desc, i)->atttypid))));
}

static void
typed_row(Datum *values, bool *nulls, void *arg)
{
	TypedStream *t = (TypedStream *) arg;

	t->fn(values, nulls, t->arg);
}

static void
stream_typed(const char *query, bool read_only, int natts, const Oid *types,
			 const char *const *names, UpsRowFn fn, void *arg)
{
	TypedStream t;

	t.natts = natts;
	t.types = types;
	t.names = names;
	t.fn = fn;
	t.arg = arg;
	ups_run_query(query, read_only, typed_columns, typed_row, &t);
}

void
ups_stream_query(const char *query, int natts, const Oid *types,
				 const char *const *names, UpsRowFn fn, void *arg)
{
	stream_typed(query, false, natts, types, names, fn, arg);
}

void
ups_stream_query_stable(const char *query, int natts, const Oid *types,
						const char *const *names, UpsRowFn fn, void *arg)
{
	stream_typed(query, true, natts, types, names, fn, arg);
}
