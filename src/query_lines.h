/*
 * query_lines.h
 *		Reading order lines from any query: (order id, product id [, tenant
 *		id]) rows into one CoocLines per tenant.  Shared by the functions that
 *		count or mine the result of a caller's query.
 */
#ifndef QUERY_LINES_H
#define QUERY_LINES_H

#include "postgres.h"

#include "compat.h"

#include "cooccur.h"

typedef struct TenantLines
{
	int64		tenant;
	CoocLines	lines;
} TenantLines;

/*
 * Runs query with SPI and collects its rows in ctx.  The query returns two
 * columns, or three when allow_tenant.  Order ids of a non-integer type are
 * hashed from their text form (64 bits) the way upsell.order_key() does;
 * product and tenant ids must be integers.  Rows with a NULL id count as
 * skipped lines of their tenant.  *has_tenant says whether a tenant column
 * was returned (else everything is tenant 0).
 */
extern TenantLines *ups_query_lines(const char *query, bool allow_tenant,
									MemoryContext ctx, int *ntenants,
									bool *has_tenant);

#endif							/* QUERY_LINES_H */
