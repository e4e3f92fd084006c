/*
 * query_stream.h
 *		Running a query to completion and handing each row to a callback,
 *		without a cursor: PostgreSQL may then plan it with parallel workers
 *		(a cursor's plan never is), no row is copied into an SPI tuple table,
 *		and the caller holds only what it keeps.  Shared by the builders that
 *		read the order lines once in a given order (purchase histories,
 *		upgrade paths, the funnel's joins) and by the reader of a caller's
 *		order lines (query_lines.c).
 */
#ifndef QUERY_STREAM_H
#define QUERY_STREAM_H

#include "postgres.h"

#include "access/tupdesc.h"

/* Called once with the query's columns, before any row: raises if unfit. */
typedef void (*UpsColumnsFn) (TupleDesc desc, void *arg);

/* Called per row; values and nulls hold natts entries, valid during the call. */
typedef void (*UpsRowFn) (Datum *values, bool *nulls, void *arg);

/*
 * Runs query, which must return rows, through SPI (read_only: as a STABLE
 * function's).  The caller is connected to SPI or not; the rows reach fn in
 * the caller's memory context.
 */
extern void ups_run_query(const char *query, bool read_only, UpsColumnsFn columns,
						  UpsRowFn fn, void *arg);

/*
 * ups_run_query for a query whose columns must have the given types (names,
 * such as "customer_id bigint", go into the error), as a VOLATILE
 * function's: each query sees what the commands before it wrote.
 */
extern void ups_stream_query(const char *query, int natts, const Oid *types,
							 const char *const *names, UpsRowFn fn, void *arg);

/*
 * ups_stream_query as a STABLE function's (read_only): the query runs at
 * the caller's snapshot and starts no command of its own.
 */
extern void ups_stream_query_stable(const char *query, int natts, const Oid *types,
									const char *const *names, UpsRowFn fn, void *arg);

#endif							/* QUERY_STREAM_H */
