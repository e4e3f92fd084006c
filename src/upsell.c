/*
 * upsell.c
 *		Module entry point and settings.
 */
#include "postgres.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "fmgr.h"
#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "upsell.h"

PG_MODULE_MAGIC;

int			upsell_max_basket_size = 100;
int			upsell_pairs_per_product = 50;
int			upsell_cooccurrence_chunk_pairs = 16777216;
bool		upsell_force_weight_change = false;
int			upsell_itemsets_memory_limit = -1;
int			upsell_bundle_min_count = 5;
int			upsell_refresh_workers = 2;
int			upsell_side_build_parallel_workers = 0;
int			upsell_bundles_per_product = 10;
int			upsell_max_cart_lines = 500;
char	   *upsell_tenant_setting = NULL;
bool		upsell_tenant_bound = false;
int64		upsell_bound_tenant = 0;

/*
 * The setting was not a bigint when the library loaded (SET before the
 * first call of a session: PostgreSQL kept it as a placeholder, which no
 * check hook saw).  Refused then, it would be dropped with a WARNING and
 * leave the session unbound, serving any tenant a request names; kept, the
 * session serves none (upsell_session_tenant raises).
 */
static bool tenant_setting_invalid = false;
static bool defining_tenant_setting = false;

/* upsell.tenant_id: empty (no tenant bound) or a bigint */
static bool
check_tenant(char **newval, void **extra, GucSource source)
{
	int64	   *parsed;
	int64		v = 0;
	bool		bound = false;
	bool		invalid = false;

	if (*newval && **newval)
	{
		char	   *end;

		errno = 0;
		v = strtoll(*newval, &end, 10);
		while (*end == ' ')
			end++;
		if (errno != 0 || end == *newval || *end != '\0')
		{
			if (!defining_tenant_setting)
			{
				GUC_check_errdetail("upsell.tenant_id must be empty or a bigint.");
				return false;
			}
			invalid = true;		/* kept, and refused when read */
		}
		bound = true;
	}
	parsed = upsell_guc_malloc(3 * sizeof(int64));	/* the GUC machinery frees extra */
	if (parsed == NULL)
		return false;
	parsed[0] = bound;
	parsed[1] = v;
	parsed[2] = invalid;
	*extra = parsed;
	return true;
}

static void
assign_tenant(const char *newval, void *extra)
{
	upsell_tenant_bound = ((int64 *) extra)[0] != 0;
	upsell_bound_tenant = ((int64 *) extra)[1];
	tenant_setting_invalid = ((int64 *) extra)[2] != 0;
}

/*
 * Whether the session is bound to a tenant (upsell.tenant_id), and which;
 * raises when the setting is no bigint (see tenant_setting_invalid).
 */
bool
upsell_session_tenant(int64 *tenant_id)
{
	if (tenant_setting_invalid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("upsell.tenant_id is \"%s\", not a bigint: this session serves no tenant",
						upsell_tenant_setting ? upsell_tenant_setting : ""),
				 errhint("SET upsell.tenant_id to the tenant to serve, or RESET it.")));
	*tenant_id = upsell_bound_tenant;
	return upsell_tenant_bound;
}

PG_FUNCTION_INFO_V1(upsell_session_tenant_sql);

/*
 * _session_tenant(): the tenant the session is bound to, NULL when none;
 * raises as upsell_session_tenant does.  The SQL functions read the binding
 * through it rather than parse the setting again: two parsers disagreed
 * (a tab after the digits, kept from before the library loaded, bound the
 * SQL functions to that tenant while the C ones refused to serve).
 */
Datum
upsell_session_tenant_sql(PG_FUNCTION_ARGS)
{
	int64		tenant_id;

	if (!upsell_session_tenant(&tenant_id))
		PG_RETURN_NULL();
	PG_RETURN_INT64(tenant_id);
}

void		_PG_init(void);

void
_PG_init(void)
{
	DefineCustomIntVariable("upsell.max_basket_size",
							"Orders with more distinct products than this count for their products but not for pairs.",
							"One order of n products adds n*(n-1)/2 pairs; wholesale orders would dominate the counts and the run time.",
							&upsell_max_basket_size,
							100, 0, 100000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("upsell.pairs_per_product",
							"How many complements refresh keeps per product in the serving model.",
							NULL,
							&upsell_pairs_per_product,
							50, 1, 10000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("upsell.cooccurrence_chunk_pairs",
							"Most product pairs one stored chunk of a tenant's co-occurrence counts holds.",
							"A tenant's counts are stored as chunks (upsell.cooccurrence_chunks) of at most this many pairs, 8 bytes each, plus every product's count, so that no stored value nears the 1 GB limit.",
							&upsell_cooccurrence_chunk_pairs,
							16777216, 1, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomBoolVariable("upsell.force_weight_change",
							 "Allows changing the variants or weights of a running experiment.",
							 "Units already exposed may then fall into another variant, and the results mix two allocations.",
							 &upsell_force_weight_change,
							 false,
							 PGC_USERSET, 0,
							 NULL, NULL, NULL);
	DefineCustomIntVariable("upsell.itemsets_memory_limit",
							"Most memory frequent itemset mining, or the order lines a refresh groups by customer, may use.",
							"The FP-tree, its conditional trees and the itemsets found count against it: beyond it mining stops with an error. The upgrade paths' build holds a tenant's order lines grouped by customer (16 bytes a line): beyond it the customers are split into parts, the lines read once per part. -1 means 32 times work_mem; 0 no limit.",
							&upsell_itemsets_memory_limit,
							-1, -1, MAX_KILOBYTES,
							PGC_USERSET, GUC_UNIT_KB,
							NULL, NULL, NULL);
	DefineCustomIntVariable("upsell.refresh_workers",
							"Background workers a refresh may use to build models beside the others.",
							"A full build of a tenant on a single node hands the models that read only the order lines and the catalog (bundles, upgrade lists, purchase histories, in that order) to background workers, within max_worker_processes; 0 builds everything in the refreshing backend.",
							&upsell_refresh_workers,
							2, 0, 8,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("upsell.side_build_parallel_workers",
							"Parallel workers each side build of a refresh may use (its max_parallel_workers_per_gather).",
							"A side build computes beside the refreshing backend, which keeps a core busy: on a 2-core machine their parallel workers only add the cost of passing rows between processes (about 6 s of CPU in an incremental refresh at 10M order lines). Raise it on a machine with cores to spare; -1 takes the refresh's own setting.",
							&upsell_side_build_parallel_workers,
							0, -1, 1024,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("upsell.bundle_min_count",
							"Orders a set of products must appear in before refresh offers it as a bundle.",
							NULL,
							&upsell_bundle_min_count,
							5, 2, INT_MAX,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("upsell.bundles_per_product",
							"How many bundles refresh keeps per product in the serving model.",
							NULL,
							&upsell_bundles_per_product,
							10, 1, 1000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("upsell.max_cart_lines",
							"The most lines a cart passed to the serving functions may have.",
							"A longer cart is refused (54000) rather than served slowly.",
							&upsell_max_cart_lines,
							500, 1, 100000,
							PGC_USERSET, 0,
							NULL, NULL, NULL);
	defining_tenant_setting = true;
	DefineCustomStringVariable("upsell.tenant_id",
							   "The tenant this session serves; empty: none bound.",
							   "With a tenant bound, functions use it when tenant_id is NULL and refuse another, and the stage views show only its rows.",
							   &upsell_tenant_setting,
							   "",
							   PGC_USERSET, 0,
							   check_tenant, assign_tenant, NULL);
	defining_tenant_setting = false;
	MarkGUCPrefixReserved("upsell");
}

PG_FUNCTION_INFO_V1(upsell_in_transaction_block);

/*
 * _in_transaction_block(): whether the calling procedure may not COMMIT:
 * inside BEGIN ... COMMIT, or called atomically (CALL from a function, or
 * from a procedure that was itself called so).  The procedure's own SPI
 * connection -- the current one, since this function opens none -- says
 * which.  refresh() uses it to decide whether it may commit per tenant.
 */
Datum
upsell_in_transaction_block(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(IsTransactionBlock() || !SPI_inside_nonatomic_context());
}

PG_FUNCTION_INFO_V1(upsell_backend_cpu_ms);

/*
 * _backend_cpu_ms(): the CPU time (user + system) this backend has used, in
 * ms.  Refresh records each model's share next to its wall time: on a busy
 * machine the wall time grows with the load, the CPU time does not.  Parallel
 * workers are other processes: their CPU is not in it.
 */
Datum
upsell_backend_cpu_ms(PG_FUNCTION_ARGS)
{
	double		ms = upsell_process_cpu_ms();

	if (ms < 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(ms);
}

/* This process's CPU time (user + system) in ms; -1 when unknown. */
double
upsell_process_cpu_ms(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return -1;
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
		(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

/* upsell.itemsets_memory_limit in kB (its -1: 32 times work_mem); 0: no limit */
int
upsell_itemsets_limit_kb(void)
{
	return upsell_itemsets_memory_limit >= 0 ? upsell_itemsets_memory_limit
		: (int) Min((int64) work_mem * 32, (int64) MAX_KILOBYTES);
}

PG_FUNCTION_INFO_V1(upsell_itemsets_limit_kb_sql);

/*
 * _itemsets_limit_kb(): the limit mining works within now, as it reads it
 * (0: none).  The bundles record it with the count they were mined at, so
 * that a refresh without new lines knows whether mining them again would
 * give others.
 */
Datum
upsell_itemsets_limit_kb_sql(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(upsell_itemsets_limit_kb());
}
