/*
 * xmin_visible.c
 *		upsell._xmin_visible(xmin xid, snapshot pg_snapshot): whether the
 *		transaction that wrote a row had committed as of a snapshot -- the
 *		watermark of incremental refresh.
 *
 * A refresh records pg_current_snapshot() when it starts reading a tenant's
 * order lines and counts only the rows whose xmin the snapshot sees; the
 * next incremental refresh takes the rows whose xmin that snapshot did not
 * see as the new ones.  Unlike a watermark on order time or order id, this
 * orders commits: a transaction that commits after the snapshot is new
 * whatever its order times, ids or start time.
 *
 * The row's xmin is the raw 32-bit xid (PostgreSQL keeps it when it
 * freezes a row).  It is placed relative to the snapshot's xmax: an xid at
 * or past xmax that is no further ahead than the xids assigned since the
 * snapshot (the next xid now) is new; anything else is past xmax, and then
 * visible unless listed as running.  A frozen row whose raw xmin lies more
 * than 2^32 - (xids since the snapshot) transactions back could be taken
 * for new; refresh checks the tenant's old rows against their count and
 * checksum and rebuilds the tenant when they disagree.
 *
 * pg_snapshot lists top-level transactions only.  A row written by a
 * subtransaction of a transaction running at the snapshot looks visible;
 * the same count check catches it (the count of old rows grows) and the
 * tenant is rebuilt.
 */
#include "postgres.h"

#include "access/transam.h"
#include "compat.h"
#include "fmgr.h"
#include "nodes/supportnodes.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(upsell_xmin_visible);
PG_FUNCTION_INFO_V1(upsell_xmin_visible_support);

/* The layout of pg_snapshot (src/backend/utils/adt/xid8funcs.c, PG 13+). */
typedef struct SnapshotValue
{
	int32		vl_len_;
	uint32		nxip;
	FullTransactionId xmin;
	FullTransactionId xmax;
	FullTransactionId xip[FLEXIBLE_ARRAY_MEMBER];
} SnapshotValue;

/* Per call site: the snapshot and how many xids were assigned since. */
typedef struct XminCache
{
	struct varlena *raw;		/* the argument it was read from */
	SnapshotValue *snap;
	uint64		span;			/* next xid now - snapshot xmax */
} XminCache;

/* Whether the cached snapshot is the one given (a constant, usually). */
static bool
same_snapshot(const XminCache *c, struct varlena *raw)
{
	if (raw == c->raw)
		return true;
	if (VARATT_IS_EXTENDED(raw) && !VARATT_IS_SHORT(raw))
		return false;			/* compressed or out of line: read it again */
	return VARSIZE_ANY_EXHDR(raw) == VARSIZE(c->snap) - VARHDRSZ &&
		memcmp(VARDATA_ANY(raw), VARDATA(c->snap), VARSIZE(c->snap) - VARHDRSZ) == 0;
}

Datum
upsell_xmin_visible(PG_FUNCTION_ARGS)
{
	TransactionId xid;
	XminCache  *c = (XminCache *) fcinfo->flinfo->fn_extra;
	uint64		xmax;
	uint32		ahead;
	uint64		full;

	if (PG_ARGISNULL(0))
		PG_RETURN_BOOL(true);	/* not a table: no xmin, every row counts */
	if (PG_ARGISNULL(1))
		PG_RETURN_NULL();
	xid = DatumGetTransactionId(PG_GETARG_DATUM(0));

	if (c == NULL || !same_snapshot(c, (struct varlena *) DatumGetPointer(PG_GETARG_DATUM(1))))
	{
		SnapshotValue *s = (SnapshotValue *) PG_DETOAST_DATUM(PG_GETARG_DATUM(1));
		uint64		next = U64FromFullTransactionId(ReadNextFullTransactionId());

		if (VARSIZE(s) < offsetof(SnapshotValue, xip) ||
			VARSIZE(s) != offsetof(SnapshotValue, xip) + s->nxip * sizeof(FullTransactionId))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("invalid pg_snapshot value")));
		if (c == NULL)
			c = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(XminCache));
		else
			pfree(c->snap);
		c->raw = (struct varlena *) DatumGetPointer(PG_GETARG_DATUM(1));
		c->snap = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, VARSIZE(s));
		memcpy(c->snap, s, VARSIZE(s));
		xmax = U64FromFullTransactionId(c->snap->xmax);
		if (next < xmax || next - xmax >= (UINT64CONST(1) << 31))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the snapshot is %llu transactions old: too old to compare row xmins with",
							(unsigned long long) (next - xmax)),
					 errhint("Run a full refresh.")));
		c->span = next - xmax;
		fcinfo->flinfo->fn_extra = c;
	}

	if (!TransactionIdIsNormal(xid))
		PG_RETURN_BOOL(true);	/* bootstrap or frozen */
	xmax = U64FromFullTransactionId(c->snap->xmax);
	ahead = xid - (uint32) xmax;
	if ((uint64) ahead < c->span)
		PG_RETURN_BOOL(false);	/* assigned at or after the snapshot's xmax */
	/* before xmax: its 64-bit form, then the running list */
	full = xmax - (uint32) ((uint32) xmax - xid);
	if (full < U64FromFullTransactionId(c->snap->xmin))
		PG_RETURN_BOOL(true);
	for (uint32 i = 0; i < c->snap->nxip; i++)
		if (U64FromFullTransactionId(c->snap->xip[i]) == full)
			PG_RETURN_BOOL(false);
	PG_RETURN_BOOL(true);
}

/*
 * The planner's estimate of _xmin_visible(row_xmin, snapshot): nearly every
 * row.  Refresh reads a tenant's lines as of the snapshot its build started
 * at, so only the lines committed since are left out.  Without this the
 * planner takes a boolean function for a third of the rows, and, with the
 * other filters of the registration view, planned the builders' reads of
 * 10M lines as if they were 11,000.
 */
Datum
upsell_xmin_visible_support(PG_FUNCTION_ARGS)
{
	Node	   *request = (Node *) PG_GETARG_POINTER(0);

	if (IsA(request, SupportRequestSelectivity))
	{
		SupportRequestSelectivity *req = (SupportRequestSelectivity *) request;

		req->selectivity = 1.0;
		PG_RETURN_POINTER(req);
	}
	PG_RETURN_POINTER(NULL);
}
