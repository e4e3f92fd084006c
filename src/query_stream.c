/*
 * query_stream.c
 *		Rows of a query to a callback, see query_stream.h.
 */
#include "postgres.h"

#include "executor/spi.h"
#include "executor/tuptable.h"
#include "tcop/dest.h"
#include "utils/builtins.h"

#include "query_stream.h"

typedef struct StreamReceiver
{
	DestReceiver pub;
	int			natts;
	const Oid  *types;
	const char *const *names;
	UpsRowFn	fn;
	void	   *arg;
	MemoryContext ctx;			/* the caller's */
} StreamReceiver;

static void
stream_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	StreamReceiver *r = (StreamReceiver *) self;

	if (typeinfo->natts != r->natts)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("the query must return %d columns, not %d", r->natts, typeinfo->natts)));
	for (int i = 0; i < r->natts; i++)
		if (TupleDescAttr(typeinfo, i)->atttypid != r->types[i])
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column %d of the query must be %s, not %s",
							i + 1, r->names[i], format_type_be(TupleDescAttr(typeinfo, i)->atttypid))));
}

static bool
stream_receive(TupleTableSlot *slot, DestReceiver *self)
{
	StreamReceiver *r = (StreamReceiver *) self;
	MemoryContext old = MemoryContextSwitchTo(r->ctx);

	slot_getallattrs(slot);
	r->fn(slot->tts_values, slot->tts_isnull, r->arg);
	MemoryContextSwitchTo(old);
	return true;
}

static void
stream_nothing(DestReceiver *self)
{
}

void
ups_stream_query(const char *query, int natts, const Oid *types,
				 const char *const *names, UpsRowFn fn, void *arg)
{
	StreamReceiver r;
	SPIExecuteOptions opts;
	int			rc;

	memset(&r, 0, sizeof r);
	r.pub.receiveSlot = stream_receive;
	r.pub.rStartup = stream_startup;
	r.pub.rShutdown = stream_nothing;
	r.pub.rDestroy = stream_nothing;
	/* DestNone would make SPI report the SELECT as a utility command */
	r.pub.mydest = DestTuplestore;
	r.natts = natts;
	r.types = types;
	r.names = names;
	r.fn = fn;
	r.arg = arg;
	r.ctx = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	memset(&opts, 0, sizeof opts);
	opts.read_only = false;
	opts.dest = (DestReceiver *) &r;
	rc = SPI_execute_extended(query, &opts);
	if (rc != SPI_OK_SELECT)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the query must be a SELECT")));
	SPI_finish();
}
