/*
 * kept_chunks.c
 *		A model's chunks of state that arrive with another model's rows, kept
 *		in the refreshing transaction's memory until their own builder
 *		publishes them.
 *
 * Why: a side build's worker sends its rows once, and some builds return
 * two models in that one stream: the upgrade lists with the counts they
 * were ranked from (upgrade_count_model), the bundles with every frequent
 * set they were taken from (bundle_set_model).  The refresh publishes the
 * first model from that read and sets the chunks of the second apart here,
 * for that model's builder, which runs next.  (Through a temporary table
 * instead, a full refresh would write and read again the 199,720 upgrade
 * lists of the 10M-line bench shop, to set two rows apart.)
 */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "funcapi.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_chunks_begin);
PG_FUNCTION_INFO_V1(upsell_chunks_keep);
PG_FUNCTION_INFO_V1(upsell_chunks_begun);
PG_FUNCTION_INFO_V1(upsell_chunks_kept);

/* One model's kept chunks, of one tenant. */
typedef struct Keeper
{
	NameData	model;
	int64		tenant_id;
	MemoryContext cxt;
	List	   *rows;			/* KeptChunk, in the order kept */
} Keeper;

typedef struct KeptChunk
{
	int32		chunk;
	bytea	   *state;
	text	   *tag;			/* NULL: none */
} KeptChunk;

/* the models that keep chunks: a few */
#define MAX_KEEPERS 8
static Keeper *keepers[MAX_KEEPERS];

/* (the transaction's memory goes at its end, and the chunks with it) */
static void
forget_keeper(void *arg)
{
	keepers[(intptr_t) arg] = NULL;
}

static int
keeper_of(const char *model)
{
	for (int i = 0; i < MAX_KEEPERS; i++)
		if (keepers[i] != NULL && strcmp(NameStr(keepers[i]->model), model) == 0)
			return i;
	return -1;
}

/*
 * _chunks_begin(model name, tenant_id bigint): the tenant's chunks of the
 * model are about to arrive; those kept before (another tenant's, a failed
 * build's) go.
 */
Datum
upsell_chunks_begin(PG_FUNCTION_ARGS)
{
	const char *model = NameStr(*PG_GETARG_NAME(0));
	int			i = keeper_of(model);
	MemoryContext cxt;
	MemoryContextCallback *cb;
	Keeper	   *k;

	if (i >= 0)
		MemoryContextDelete(keepers[i]->cxt);	/* (its callback frees the slot) */
	for (i = 0; i < MAX_KEEPERS && keepers[i] != NULL; i++)
		;
	if (i == MAX_KEEPERS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("chunks of more than %d models kept at once", MAX_KEEPERS)));
	cxt = AllocSetContextCreate(TopTransactionContext, "upsell kept chunks", ALLOCSET_DEFAULT_SIZES);
	k = MemoryContextAllocZero(cxt, sizeof(Keeper));
	namestrcpy(&k->model, model);
	k->tenant_id = PG_GETARG_INT64(1);
	k->cxt = cxt;
	cb = MemoryContextAlloc(cxt, sizeof(MemoryContextCallback));
	cb->func = forget_keeper;
	cb->arg = (void *) (intptr_t) i;
	MemoryContextRegisterResetCallback(cxt, cb);
	keepers[i] = k;
	PG_RETURN_VOID();
}

/*
 * _chunks_keep(model name, tenant_id bigint, chunk int, state bytea, tag
 * text) RETURNS boolean: true for a row of the model that carries the
 * chunks (no state), which the caller keeps; a chunk is kept here instead,
 * and false.
 */
Datum
upsell_chunks_keep(PG_FUNCTION_ARGS)
{
	int			i;
	KeptChunk  *c;
	MemoryContext old;

	if (PG_ARGISNULL(3))
		PG_RETURN_BOOL(true);
	i = PG_ARGISNULL(0) ? -1 : keeper_of(NameStr(*PG_GETARG_NAME(0)));
	if (i < 0 || PG_ARGISNULL(1) || PG_GETARG_INT64(1) != keepers[i]->tenant_id || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("chunks of %s of a tenant whose build did not begin them",
						PG_ARGISNULL(0) ? "a model" : NameStr(*PG_GETARG_NAME(0)))));
	old = MemoryContextSwitchTo(keepers[i]->cxt);
	c = palloc(sizeof(KeptChunk));
	c->chunk = PG_GETARG_INT32(2);
	c->state = PG_GETARG_BYTEA_P_COPY(3);
	c->tag = PG_ARGISNULL(4) ? NULL : PG_GETARG_TEXT_P_COPY(4);
	keepers[i]->rows = lappend(keepers[i]->rows, c);
	MemoryContextSwitchTo(old);
	PG_RETURN_BOOL(false);
}

/* _chunks_begun(model name, tenant_id bigint): whether the tenant's began */
Datum
upsell_chunks_begun(PG_FUNCTION_ARGS)
{
	int			i = keeper_of(NameStr(*PG_GETARG_NAME(0)));

	PG_RETURN_BOOL(i >= 0 && keepers[i]->tenant_id == PG_GETARG_INT64(1));
}

/*
 * _chunks_kept(model name, tenant_id bigint) RETURNS TABLE (chunk int,
 * state bytea, tag text): the chunks kept of the tenant, in the order kept.
 */
Datum
upsell_chunks_kept(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i = keeper_of(NameStr(*PG_GETARG_NAME(0)));
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	if (i < 0 || keepers[i]->tenant_id != PG_GETARG_INT64(1))
		return (Datum) 0;
	foreach(lc, keepers[i]->rows)
	{
		KeptChunk  *c = lfirst(lc);
		Datum		values[3];
		bool		nulls[3] = {false, false, c->tag == NULL};

		values[0] = Int32GetDatum(c->chunk);
		values[1] = PointerGetDatum(c->state);
		values[2] = PointerGetDatum(c->tag);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
