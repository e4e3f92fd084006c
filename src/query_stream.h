/*
 * query_stream.h
 *		Running a query to completion and handing each row to a callback,
 *		without a cursor: PostgreSQL may then plan it with parallel workers
 *		(a cursor's plan never is), and the caller holds only what it keeps.
 *		Shared by the builders that read the order lines once in a given
 *		order (purchase histories, upgrade paths).
 */
#ifndef QUERY_STREAM_H
#define QUERY_STREAM_H

#include "postgres.h"

/* Called per row; values and nulls hold natts entries, valid during the call. */
typedef void (*UpsRowFn) (Datum *values, bool *nulls, void *arg);

/*
 * Runs query (a SELECT) through SPI.  Its columns must have the given types
 * (names, such as "customer_id bigint", go into the error).  The caller is
 * connected to SPI or not; the rows reach fn in the caller's memory context.
 */
extern void ups_stream_query(const char *query, int natts, const Oid *types,
							 const char *const *names, UpsRowFn fn, void *arg);

#endif							/* QUERY_STREAM_H */
