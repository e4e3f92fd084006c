/*
 * host_glue.c
 *		The server side of src/core/ups_host.h: core allocations go to the
 *		current memory context, cancellation to CHECK_FOR_INTERRUPTS().  Also
 *		the small helpers the fmgr files share (aggregate context, flat
 *		states, int8 arrays, the pinned search_path of internal queries).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/lsyscache.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "ups_host.h"
#include "upsell.h"

/*
 * Large blocks get the huge page hint before anything touches them (see
 * src/core/hugepages.c), so a zeroed one is zeroed after the hint.
 */
void *
ups_alloc(size_t size)
{
	void	   *ptr = palloc_extended(size, MCXT_ALLOC_HUGE);

	ups_advise_huge(ptr, size);
	return ptr;
}

void *
ups_alloc0(size_t size)
{
	void	   *ptr;

	if (size < UPS_HUGE_MIN)
		return palloc_extended(size, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	ptr = ups_alloc(size);
	memset(ptr, 0, size);
	return ptr;
}

void *
ups_realloc(void *ptr, size_t size)
{
	ptr = repalloc_huge(ptr, size);
	ups_advise_huge(ptr, size);
	return ptr;
}

void
ups_free(void *ptr)
{
	if (ptr)
		pfree(ptr);
}

void
ups_check_interrupts(void)
{
	CHECK_FOR_INTERRUPTS();
}

/* The aggregate's memory context; an error outside an aggregate. */
MemoryContext
upsell_agg_context(FunctionCallInfo fcinfo, const char *fname)
{
	MemoryContext ctx;

	if (!AggCheckCallContext(fcinfo, &ctx))
		elog(ERROR, "%s called in non-aggregate context", fname);
	return ctx;
}

/*
 * A bytea with room for size bytes of payload, or a clear error when a flat
 * state (what) would exceed the largest value PostgreSQL can hold.
 */
bytea *
upsell_alloc_bytea(size_t size, const char *what, const char *hint)
{
	bytea	   *result;

	if (size + VARHDRSZ > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("%s of %zu bytes exceeds the maximum value size", what, size),
				 hint ? errhint("%s", hint) : 0));
	result = palloc(size + VARHDRSZ);
	SET_VARSIZE(result, size + VARHDRSZ);
	return result;
}

/* The elements of a one-dimensional int8 array, NULLs skipped. */
int64 *
upsell_int8_elems(ArrayType *arr, int *n)
{
	Datum	   *d;
	bool	   *nulls;
	int			m,
				i,
				j = 0;
	int64	   *out;

	deconstruct_array(arr, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &d, &nulls, &m);
	out = palloc(Max(m, 1) * sizeof(int64));
	for (i = 0; i < m; i++)
		if (!nulls[i])
			out[j++] = DatumGetInt64(d[i]);
	*n = j;
	return out;
}

/* The elements of a one-dimensional array of any element type. */
void
upsell_deconstruct(ArrayType *arr, Oid type, Datum **values, bool **nulls, int *n)
{
	int16		len;
	bool		byval;
	char		align;

	get_typlenbyvalalign(type, &len, &byval, &align);
	deconstruct_array(arr, type, len, byval, align, values, nulls, n);
}

/* An int8 array of ids[0 .. n). */
ArrayType *
upsell_int8_array(const int64 *ids, int n)
{
	Datum	   *d = palloc(Max(n, 1) * sizeof(Datum));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = Int64GetDatum(ids[i]);
	return construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

/*
 * The extension's own queries (SPI) run with search_path pinned to
 * pg_catalog, pg_temp, as a function with SET search_path would: nothing a
 * caller's schema defines can stand in for an operator, function or type
 * they use, even where one was left unqualified.  Returns the GUC nest
 * level to pass to upsell_unpin_search_path; an error restores the caller's
 * path with the (sub)transaction's abort.
 */
int
upsell_pin_search_path(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	return level;
}

void
upsell_unpin_search_path(int level)
{
	AtEOXact_GUC(true, level);
}
