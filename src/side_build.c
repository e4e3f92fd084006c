/*
 * side_build.c
 *		Models built beside the others: a refresh hands the query of a model
 *		that reads nothing but the order lines and the catalog to a
 *		background worker, goes on
 *		with the models that need the ones built before them, and reads the
 *		worker's rows when it reaches that model.  On a machine of few cores
 *		one tenant's refresh then uses more than one.
 *
 * The worker runs the query to completion into a tuplestore (work_mem, then
 * temporary files: it holds no more than a build of the refresh would), then
 * sends the rows through a shared-memory queue when the refresh reads them.
 * The caller writes the refresh's snapshot into the query, so the worker
 * reads the lines the refresh would have read.  The worker takes the
 * caller's session user, role, user and security context, and the settings
 * the session changed.  A worker that cannot start, fails before it runs the
 * query (a connection limit) or cannot take a lock within SIDE_LOCK_TIMEOUT
 * leaves the refresh to compute the rows itself (_side_ready is false); an
 * error of the query is raised in the refresh, with
 * its SQLSTATE, when it reads the rows.  Workers live no longer than the
 * (sub)transaction that started them.
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "executor/tqueue.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/dsm.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "tcop/dest.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/tuplestore.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_side_start);
PG_FUNCTION_INFO_V1(upsell_side_ready);
PG_FUNCTION_INFO_V1(upsell_side_rows);
PG_FUNCTION_INFO_V1(upsell_side_builds);
PG_FUNCTION_INFO_V1(upsell_side_cpu_ms);

PGDLLEXPORT void upsell_side_main(Datum main_arg);

/* The queue's size: rows stream through it, it never holds a build. */
#define SIDE_QUEUE_SIZE		((Size) 4 * 1024 * 1024)
#define SIDE_MAX_COLUMNS	64
#define SIDE_MAX_BUILDS		8
#define SIDE_TEXT_LEN		1024

/*
 * What the worker has done.  The refresh waits for it to have COMPUTED its
 * rows or FAILED.  SENT: every row is in the queue; a worker that ends
 * while COMPUTED (terminated, a FATAL error, which no PG_CATCH sees) has
 * sent only some, and its queue's end is not the end of the rows.
 * SKIPPED: it could not take a lock within
 * SIDE_LOCK_TIMEOUT, maybe one that the refresh's own transaction holds
 * (a registration's DDL before a refresh in one transaction): the refresh,
 * which waits for the worker outside the lock manager, would wait forever,
 * so it builds the rows itself.
 */
#define SIDE_STARTING	0
#define SIDE_RUNNING	1
#define SIDE_FAILED		2
#define SIDE_COMPUTED	3
#define SIDE_SKIPPED	4
#define SIDE_SENT		5

#define SIDE_HAS_ROWS(state) ((state) == SIDE_COMPUTED || (state) == SIDE_SENT)
#define SIDE_LOCK_TIMEOUT "1s"

/*
 * The worker takes the settings this session changed (SET, or the client's
 * startup packet: TimeZone and DateStyle change what a build computes from
 * dates), except those of the connection itself; the others it reads from the
 * same configuration file, database and role as this backend.
 */
static const char side_settings_query[] =
"SELECT s.name, s.setting FROM pg_catalog.pg_settings s "
"WHERE s.source OPERATOR(pg_catalog.=) ANY ('{client,session}') "
"AND s.context OPERATOR(pg_catalog.=) ANY ('{user,superuser}') "
"AND s.name OPERATOR(pg_catalog.<>) ALL ('{client_encoding,application_name,session_authorization,role,"
"search_path,transaction_isolation,transaction_read_only,transaction_deferrable}')";

/* The shared segment: this header, the query, the settings, the queue. */
typedef struct SideShared
{
	Oid			database;
	Oid			session_user;
	Oid			outer_user;
	bool		outer_is_superuser;
	Oid			current_user;
	int			sec_context;
	pg_atomic_uint32 state;
	/*
	 * The worker's CPU time (user + system, ms) from its start until it had
	 * computed its rows, written with them (-1: unknown); its own parallel
	 * workers' is not in it.
	 */
	double		cpu_ms;
	/* the query's columns, written before the first row is sent */
	int			natts;
	Oid			types[SIDE_MAX_COLUMNS];
	/* the query's error */
	int			sqlerrcode;
	char		message[SIDE_TEXT_LEN];
	char		detail[SIDE_TEXT_LEN];
	char		hint[SIDE_TEXT_LEN];
	Size		query_offset;
	Size		settings_offset;	/* name\0value\0 per setting */
	Size		queue_offset;
} SideShared;

typedef struct SideBuild
{
	char		name[NAMEDATALEN];
	SubTransactionId subxact;	/* the (sub)transaction that started it */
	dsm_segment *seg;
	BackgroundWorkerHandle *handle;
} SideBuild;

/* This backend's side builds of its current transaction. */
static SideBuild side_builds[SIDE_MAX_BUILDS];
static int	side_count = 0;
static bool side_callback_registered = false;

static void
side_forget(int i)
{
	SideBuild  *b = &side_builds[i];

	if (b->handle != NULL)
	{
		TerminateBackgroundWorker(b->handle);
		pfree(b->handle);
	}
	if (b->seg != NULL)
		dsm_detach(b->seg);
	side_builds[i] = side_builds[--side_count];
}

/* A transaction's workers end with it, whether it commits or not. */
static void
side_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			while (side_count > 0)
				side_forget(side_count - 1);
			break;
		default:
			break;
	}
}

/*
 * A subtransaction's workers end when it rolls back (a refresh inside a
 * transaction block builds each tenant in one): the next tenant must not
 * read the rows of the one that failed.  Those of its subtransactions
 * started after it.
 */
static void
side_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	if (event != SUBXACT_EVENT_ABORT_SUB)
		return;
	for (int i = side_count - 1; i >= 0; i--)
		if (side_builds[i].subxact >= mySubid)
			side_forget(i);
}

static int
side_find(const char *name)
{
	for (int i = 0; i < side_count; i++)
		if (strcmp(side_builds[i].name, name) == 0)
			return i;
	return -1;
}

static void
side_copy_text(char *dest, const char *src)
{
	if (src == NULL)
		dest[0] = '\0';
	else
		snprintf(dest, SIDE_TEXT_LEN, "%s", src);
}

/*
 * _side_start(name, query): starts a worker that runs query (a SELECT) and
 * keeps its rows for _side_rows(name).  False when no worker could be
 * started (max_worker_processes reached): the caller builds the rows itself.
 */
Datum
upsell_side_start(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(1));
	StringInfoData settings;
	Size		query_offset,
				settings_offset,
				queue_offset,
				size;
	dsm_segment *seg;
	SideShared *sh;
	shm_mq	   *mq;
	BackgroundWorker worker;
	BackgroundWorkerHandle *handle;
	MemoryContext old;
	int			existing;

	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_NAME_TOO_LONG),
				 errmsg("side build name \"%s\" is too long", name)));
	existing = side_find(name);
	if (existing >= 0)
		side_forget(existing);
	if (side_count >= SIDE_MAX_BUILDS)
		PG_RETURN_BOOL(false);
	if (!side_callback_registered)
	{
		RegisterXactCallback(side_xact_callback, NULL);
		RegisterSubXactCallback(side_subxact_callback, NULL);
		side_callback_registered = true;
	}

	initStringInfo(&settings);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(side_settings_query, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading pg_settings failed");
	for (uint64 row = 0; row < SPI_processed; row++)
	{
		char	   *setting = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 2);

		appendStringInfoString(&settings, SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 1));
		appendStringInfoChar(&settings, '\0');
		appendStringInfoString(&settings, setting ? setting : "");
		appendStringInfoChar(&settings, '\0');
	}
	SPI_finish();
	appendStringInfoChar(&settings, '\0');

	query_offset = MAXALIGN(sizeof(SideShared));
	settings_offset = MAXALIGN(query_offset + strlen(query) + 1);
	queue_offset = MAXALIGN(settings_offset + settings.len + 1);
	size = queue_offset + SIDE_QUEUE_SIZE;

	old = MemoryContextSwitchTo(TopMemoryContext);
	seg = dsm_create(size, 0);
	/* detached by side_forget: the workers outlive the statement */
	dsm_pin_mapping(seg);
	sh = (SideShared *) dsm_segment_address(seg);
	memset(sh, 0, sizeof(SideShared));
	sh->database = MyDatabaseId;
	sh->session_user = GetSessionUserId();
	sh->outer_user = GetOuterUserId();
	sh->outer_is_superuser = superuser_arg(sh->outer_user);
	GetUserIdAndSecContext(&sh->current_user, &sh->sec_context);
	pg_atomic_init_u32(&sh->state, SIDE_STARTING);
	sh->query_offset = query_offset;
	sh->settings_offset = settings_offset;
	sh->queue_offset = queue_offset;
	memcpy((char *) sh + query_offset, query, strlen(query) + 1);
	memcpy((char *) sh + settings_offset, settings.data, settings.len + 1);
	mq = shm_mq_create((char *) sh + queue_offset, SIDE_QUEUE_SIZE);
	shm_mq_set_receiver(mq, MyProc);

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "upsell");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "upsell_side_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "upsell side build %s for PID %d", name, MyProcPid);
	snprintf(worker.bgw_type, BGW_MAXLEN, "upsell side build");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(seg));
	worker.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&worker, &handle))
	{
		MemoryContextSwitchTo(old);
		dsm_detach(seg);
		PG_RETURN_BOOL(false);
	}
	MemoryContextSwitchTo(old);

	snprintf(side_builds[side_count].name, NAMEDATALEN, "%s", name);
	side_builds[side_count].subxact = GetCurrentSubTransactionId();
	side_builds[side_count].seg = seg;
	side_builds[side_count].handle = handle;
	side_count++;
	PG_RETURN_BOOL(true);
}

/*
 * _side_builds(): this transaction's side builds not yet read, and whether
 * each is still computing (its worker starting or running its query), for
 * a refresh that keeps upsell.refresh_workers of them computing.
 */
Datum
upsell_side_builds(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < side_count; i++)
	{
		SideShared *sh = (SideShared *) dsm_segment_address(side_builds[i].seg);
		uint32		state = pg_atomic_read_u32(&sh->state);
		pid_t		pid;
		Datum		values[2];
		bool		nulls[2] = {false, false};

		values[0] = CStringGetTextDatum(side_builds[i].name);
		values[1] = BoolGetDatum((state == SIDE_STARTING || state == SIDE_RUNNING) &&
								 GetBackgroundWorkerPid(side_builds[i].handle, &pid) != BGWH_STOPPED);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/*
 * A worker's query failed: the side build is forgotten and the caller
 * builds the rows itself, in its own transaction, which sees what the
 * worker could not (a registration view made anew by this refresh and not
 * committed yet), and, where the rows really cannot be built, fails with
 * its own error and context.  The worker's error is kept in a NOTICE.
 */
static void
side_give_up(int i, SideShared *sh)
{
	ereport(NOTICE,
			(errmsg("upsell: the side build of %s failed: %s; the refresh builds its rows itself",
					side_builds[i].name, sh->message)));
	side_forget(i);
}

/*
 * _side_ready(name): true when the worker has computed the rows of its
 * query, waiting for it; false when there is no such side build, or its
 * worker failed, ended before it ran the query or could not take its locks:
 * then the side build is forgotten and the caller builds the rows itself.
 */
Datum
upsell_side_ready(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int			i = side_find(name);
	SideShared *sh;
	pid_t		pid;

	if (i < 0)
		PG_RETURN_BOOL(false);
	sh = (SideShared *) dsm_segment_address(side_builds[i].seg);
	for (;;)
	{
		uint32		state = pg_atomic_read_u32(&sh->state);
		bool		alive;

		if (SIDE_HAS_ROWS(state))
			PG_RETURN_BOOL(true);
		if (state == SIDE_FAILED)
		{
			pg_read_barrier();
			side_give_up(i, sh);
			PG_RETURN_BOOL(false);
		}
		if (state == SIDE_SKIPPED)
			break;
		alive = GetBackgroundWorkerPid(side_builds[i].handle, &pid) == BGWH_STARTED ||
			(state == SIDE_STARTING &&
			 WaitForBackgroundWorkerStartup(side_builds[i].handle, &pid) == BGWH_STARTED);
		if (!alive)
		{
			/* it may have finished just before it ended */
			pg_read_barrier();
			state = pg_atomic_read_u32(&sh->state);
			if (state == SIDE_SENT)
				PG_RETURN_BOOL(true);
			if (state == SIDE_FAILED)
			{
				pg_read_barrier();
				side_give_up(i, sh);
				PG_RETURN_BOOL(false);
			}
			break;
		}
		/*
		 * The worker sets the latch when it has computed its rows or failed,
		 * and the postmaster when it ends (bgw_notify_pid); the timeout is a
		 * safety net only.
		 */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000,
						 PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	side_forget(i);
	PG_RETURN_BOOL(false);
}

/*
 * _side_cpu_ms(name): the CPU time (ms) the worker of side build name used
 * to compute its rows, once it has (_side_ready); NULL before, when there is
 * no such side build or its rows were read already, or when it is unknown.
 */
Datum
upsell_side_cpu_ms(PG_FUNCTION_ARGS)
{
	int			i = side_find(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	SideShared *sh;

	if (i < 0)
		PG_RETURN_NULL();
	sh = (SideShared *) dsm_segment_address(side_builds[i].seg);
	if (!SIDE_HAS_ROWS(pg_atomic_read_u32(&sh->state)))
		PG_RETURN_NULL();
	pg_read_barrier();
	if (sh->cpu_ms < 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(sh->cpu_ms);
}

static void
side_raise(SideShared *sh)
{
	ereport(ERROR,
			(errcode(sh->sqlerrcode),
			 errmsg("%s", sh->message),
			 sh->detail[0] ? errdetail("%s", sh->detail) : 0,
			 sh->hint[0] ? errhint("%s", sh->hint) : 0,
			 errcontext("side build of a refresh")));
}

static void
side_check_columns(SideShared *sh, TupleDesc desc, const char *name)
{
	pg_read_barrier();
	if (sh->natts != desc->natts)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("side build \"%s\" returns %d columns, not %d", name,
						sh->natts, desc->natts)));
	for (int a = 0; a < desc->natts; a++)
		if (sh->types[a] != TupleDescAttr(desc, a)->atttypid)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column %d of side build \"%s\" is %s, not %s", a + 1, name,
							format_type_be(sh->types[a]),
							format_type_be(TupleDescAttr(desc, a)->atttypid))));
}

/*
 * _side_rows(name) AS (columns): the rows of the side build's query, which
 * must have exactly these column types; its error when it failed.
 */
Datum
upsell_side_rows(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			i = side_find(name);
	SideShared *sh;
	shm_mq_handle *mqh;
	TupleQueueReader *reader;
	TupleTableSlot *slot;
	bool		checked = false;

	if (i < 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no side build \"%s\" in this transaction", name)));
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	sh = (SideShared *) dsm_segment_address(side_builds[i].seg);
	mqh = shm_mq_attach((shm_mq *) ((char *) sh + sh->queue_offset), side_builds[i].seg,
						side_builds[i].handle);
	reader = CreateTupleQueueReader(mqh);
	slot = MakeSingleTupleTableSlot(rsinfo->setDesc, &TTSOpsMinimalTuple);
	for (;;)
	{
		bool		done = false;
		MinimalTuple tuple = TupleQueueReaderNext(reader, false, &done);

		if (done)
			break;
		if (!checked)
		{
			side_check_columns(sh, rsinfo->setDesc, name);
			checked = true;
		}
		ExecStoreMinimalTuple(tuple, slot, false);
		tuplestore_puttupleslot(rsinfo->setResult, slot);
		CHECK_FOR_INTERRUPTS();
	}
	ExecDropSingleTupleTableSlot(slot);
	/* the worker detached: it sent every row, failed, or was ended */
	pg_read_barrier();
	if (pg_atomic_read_u32(&sh->state) == SIDE_FAILED)
	{
		SideShared	copy;

		memcpy(&copy, sh, sizeof(SideShared));
		side_forget(side_find(name));
		side_raise(&copy);
	}
	if (pg_atomic_read_u32(&sh->state) != SIDE_SENT || sh->natts == 0)
	{
		/*
		 * Too late to build the rows here instead: some are published
		 * already.  The tenant's build fails and it keeps its models.
		 */
		side_forget(side_find(name));
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("side build \"%s\" ended before it sent all its rows", name),
				 errdetail("Its background worker was terminated or failed while sending them.")));
	}
	if (!checked)
		side_check_columns(sh, rsinfo->setDesc, name);
	side_forget(side_find(name));
	return (Datum) 0;
}

/* ---- the worker ------------------------------------------------------------ */

/*
 * Wakes the refresh, which may wait in _side_ready for the state just
 * written (it is the queue's receiver).
 */
static void
side_wake_refresh(SideShared *sh)
{
	PGPROC	   *refresh = shm_mq_get_receiver((shm_mq *) ((char *) sh + sh->queue_offset));

	if (refresh != NULL)
		SetLatch(&refresh->procLatch);
}

typedef struct SideReceiver
{
	DestReceiver pub;
	SideShared *sh;
	Tuplestorestate *store;
	TupleDesc	desc;
	MemoryContext ctx;			/* outlives the query, unlike the executor's */
} SideReceiver;

static void
side_receiver_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	SideReceiver *r = (SideReceiver *) self;
	MemoryContext old;

	if (typeinfo->natts > SIDE_MAX_COLUMNS)
		ereport(ERROR,
				(errcode(ERRCODE_TOO_MANY_COLUMNS),
				 errmsg("a side build returns at most %d columns", SIDE_MAX_COLUMNS)));
	old = MemoryContextSwitchTo(r->ctx);

	r->desc = CreateTupleDescCopy(typeinfo);
	MemoryContextSwitchTo(old);
}

static bool
side_receiver_receive(TupleTableSlot *slot, DestReceiver *self)
{
	tuplestore_puttupleslot(((SideReceiver *) self)->store, slot);
	return true;
}

static void
side_receiver_nothing(DestReceiver *self)
{
}

static void
side_apply_settings(const char *p)
{
	while (*p)
	{
		const char *name = p;
		const char *value = p + strlen(p) + 1;

		SetConfigOption(name, value, superuser() ? PGC_SUSET : PGC_USERSET, PGC_S_SESSION);
		p = value + strlen(value) + 1;
	}
}

void
upsell_side_main(Datum main_arg)
{
	dsm_segment *seg;
	SideShared *sh;
	shm_mq_handle *mqh;
	SideReceiver r;
	SPIExecuteOptions opts;
	MemoryContext mcxt;
	const char *query;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the refresh that started this side build has ended")));
	sh = (SideShared *) dsm_segment_address(seg);
	query = (const char *) sh + sh->query_offset;

	/* as the refresh: its session user (who can log in), role and user */
	BackgroundWorkerInitializeConnectionByOid(sh->database, sh->session_user, 0);
	SetCurrentRoleId(sh->outer_user, sh->outer_is_superuser);
	SetUserIdAndSecContext(sh->current_user, sh->sec_context);
	shm_mq_set_sender((shm_mq *) ((char *) sh + sh->queue_offset), MyProc);
	mqh = shm_mq_attach((shm_mq *) ((char *) sh + sh->queue_offset), seg, NULL);
	pg_atomic_write_u32(&sh->state, SIDE_RUNNING);

	mcxt = CurrentMemoryContext;
	PG_TRY();
	{
		DestReceiver *queue;
		TupleTableSlot *slot;
		bool		sent_all;

		StartTransactionCommand();
		side_apply_settings((const char *) sh + sh->settings_offset);
		/* as the refresh's own backend while it builds (refresh_malloc.c) */
		upsell_hold_freed_memory_set(true);
		/* the query is the refresh's, written fully qualified; pinned anyway */
		SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION);
		SetConfigOption("lock_timeout", SIDE_LOCK_TIMEOUT, PGC_USERSET, PGC_S_SESSION);
		/* (the refresh's setting of it, applied above) */
		if (upsell_side_build_parallel_workers >= 0)
			SetConfigOption("max_parallel_workers_per_gather",
							psprintf("%d", upsell_side_build_parallel_workers), PGC_USERSET, PGC_S_SESSION);
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, query);

		memset(&r, 0, sizeof r);
		r.pub.receiveSlot = side_receiver_receive;
		r.pub.rStartup = side_receiver_startup;
		r.pub.rShutdown = side_receiver_nothing;
		r.pub.rDestroy = side_receiver_nothing;
		r.pub.mydest = DestTuplestore;
		r.sh = sh;
		r.ctx = CurrentMemoryContext;
		r.store = tuplestore_begin_heap(false, false, work_mem);
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		memset(&opts, 0, sizeof opts);
		opts.dest = (DestReceiver *) &r;
		if (SPI_execute_extended(query, &opts) != SPI_OK_SELECT || r.desc == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("a side build must be a SELECT")));

		/* the columns first, then the rows as the refresh reads them */
		sh->cpu_ms = upsell_process_cpu_ms();
		sh->natts = r.desc->natts;
		for (int a = 0; a < r.desc->natts; a++)
			sh->types[a] = TupleDescAttr(r.desc, a)->atttypid;
		pg_write_barrier();
		pg_atomic_write_u32(&sh->state, SIDE_COMPUTED);
		side_wake_refresh(sh);
		pgstat_report_activity(STATE_RUNNING, "(sending its rows to the refresh)");
		queue = CreateTupleQueueDestReceiver(mqh);
		slot = MakeSingleTupleTableSlot(r.desc, &TTSOpsMinimalTuple);
		sent_all = true;
		while (tuplestore_gettupleslot(r.store, true, false, slot))
		{
			if (!queue->receiveSlot(slot, queue))
			{
				sent_all = false;	/* the refresh is gone */
				break;
			}
			CHECK_FOR_INTERRUPTS();
		}
		ExecDropSingleTupleTableSlot(slot);
		/* before the queue's end, which then means the end of the rows */
		if (sent_all)
		{
			pg_write_barrier();
			pg_atomic_write_u32(&sh->state, SIDE_SENT);
		}
		/* detaches the queue: the refresh knows that every row was sent */
		queue->rDestroy(queue);
		tuplestore_end(r.store);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(mcxt);
		edata = CopyErrorData();
		sh->sqlerrcode = edata->sqlerrcode;
		side_copy_text(sh->message, edata->message);
		side_copy_text(sh->detail, edata->detail);
		side_copy_text(sh->hint, edata->hint);
		pg_write_barrier();
		pg_atomic_write_u32(&sh->state, edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE &&
							pg_atomic_read_u32(&sh->state) == SIDE_RUNNING ? SIDE_SKIPPED : SIDE_FAILED);
		side_wake_refresh(sh);
		PG_RE_THROW();
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}
