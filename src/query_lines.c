/*
 * query_lines.c
 *		Order lines from any query (see query_lines.h).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "query_lines.h"

static bool
is_integer_type(Oid type)
{
	return type == INT2OID || type == INT4OID || type == INT8OID;
}

static int64
integer_datum(Datum d, Oid type)
{
	switch (type)
	{
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		default:
			return DatumGetInt64(d);
	}
}

TenantLines *
ups_query_lines(const char *query, bool allow_tenant, MemoryContext ctx,
				int *ntenants_out, bool *has_tenant)
{
	SPIPlanPtr	plan;
	Portal		portal;
	TupleDesc	desc;
	Oid			order_type,
				order_out;
	bool		order_varlena;
	TenantLines *tenants = NULL;
	int			ntenants = 0,
				maxtenants = 0;
	int			i;

	SPI_connect();
	plan = SPI_prepare(query, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (!SPI_is_cursor_plan(plan))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("query must return rows")));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	desc = portal->tupDesc;
	if (allow_tenant && desc->natts != 2 && desc->natts != 3)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("query must return two or three columns, not %d", desc->natts),
				 errhint("Return (order id, product id) or (order id, product id, tenant id).")));
	if (!allow_tenant && desc->natts != 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("query must return two columns, not %d", desc->natts),
				 errhint("Return (order id, product id).")));
	order_type = SPI_gettypeid(desc, 1);
	if (!is_integer_type(SPI_gettypeid(desc, 2)))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("product id column must be an integer type, not %s",
						format_type_be(SPI_gettypeid(desc, 2)))));
	if (desc->natts == 3 && !is_integer_type(SPI_gettypeid(desc, 3)))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("tenant id column must be an integer type, not %s",
						format_type_be(SPI_gettypeid(desc, 3)))));
	getTypeOutputInfo(order_type, &order_out, &order_varlena);
	*has_tenant = desc->natts == 3;

	for (;;)
	{
		uint64		row;

		SPI_cursor_fetch(portal, true, 10000);
		if (SPI_processed == 0)
			break;
		for (row = 0; row < SPI_processed; row++)
		{
			HeapTuple	tup = SPI_tuptable->vals[row];
			bool		onull,
						pnull,
						tnull = false;
			Datum		o = SPI_getbinval(tup, desc, 1, &onull);
			Datum		p = SPI_getbinval(tup, desc, 2, &pnull);
			int64		tenant = 0;
			int64		order_key;
			TenantLines *t = NULL;
			MemoryContext old;

			if (desc->natts == 3)
			{
				Datum		td = SPI_getbinval(tup, desc, 3, &tnull);

				if (!tnull)
					tenant = integer_datum(td, SPI_gettypeid(desc, 3));
			}
			old = MemoryContextSwitchTo(ctx);
			for (i = 0; i < ntenants; i++)
				if (tenants[i].tenant == tenant)
					t = &tenants[i];
			if (t == NULL)
			{
				if (ntenants == maxtenants)
				{
					maxtenants = maxtenants ? maxtenants * 2 : 8;
					tenants = tenants ? repalloc(tenants, maxtenants * sizeof(TenantLines))
						: palloc(maxtenants * sizeof(TenantLines));
				}
				t = &tenants[ntenants++];
				t->tenant = tenant;
				cooc_lines_init(&t->lines);
			}
			if (onull || pnull || tnull)
				t->lines.skipped++;
			else
			{
				if (is_integer_type(order_type))
					order_key = integer_datum(o, order_type);
				else
				{
					char	   *s = OidOutputFunctionCall(order_out, o);

					order_key = (int64) hash_bytes_extended((unsigned char *) s, strlen(s), 0);
					pfree(s);
				}
				cooc_lines_add(&t->lines, order_key,
							   integer_datum(p, SPI_gettypeid(desc, 2)));
			}
			MemoryContextSwitchTo(old);
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_finish();
	*ntenants_out = ntenants;
	return tenants;
}
