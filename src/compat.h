/*
 * compat.h
 *		Every difference between the PostgreSQL releases upsell supports
 *		(15 and 18 tested, 17 compiled; see README "Supported versions"),
 *		kept here behind PG_VERSION_NUM so that the other files are written
 *		against one API.  Included by upsell.h and query_lines.h, after
 *		postgres.h.
 */
#ifndef UPSELL_COMPAT_H
#define UPSELL_COMPAT_H

#include "postgres.h"

#include "utils/memutils.h"
#include "utils/palloc.h"

#if PG_VERSION_NUM < 150000
#error "upsell needs PostgreSQL 15 or later"
#endif

/* From 16 on the varlena macros (VARSIZE, VARDATA, ...) have a header of their own. */
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif

/*
 * Array allocation that loads into every minor release of a major.
 *
 * The minor releases of 2026-05-14 (18.4 and its siblings on 14 to 17)
 * fixed allocation-size overflows by turning palloc_array(), palloc0_array()
 * and repalloc_array() into calls of new functions (palloc_mul(),
 * palloc0_mul(), repalloc_mul(), ...) that the older minors of the same major
 * do not export: a module built against 17.12's headers would fail to load
 * into an older 17.x with "undefined symbol: palloc0_mul".
 * These versions keep the overflow check and call only what every release
 * exports.  make test checks the built module for references to the new
 * functions (scripts/test.sh, "pg17").
 */
static inline Size
upsell_array_size(Size elem, Size count)
{
	if (count != 0 && elem > MaxAllocHugeSize / count)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("cannot allocate %zu elements of %zu bytes", count, elem)));
	return elem * count;
}

#undef palloc_array
#undef palloc0_array
#undef palloc_array_extended
#undef repalloc_array
#undef repalloc_array_extended
#define palloc_array(type, count) \
	((type *) palloc(upsell_array_size(sizeof(type), (count))))
#define palloc0_array(type, count) \
	((type *) palloc0(upsell_array_size(sizeof(type), (count))))
#define palloc_array_extended(type, count, flags) \
	((type *) palloc_extended(upsell_array_size(sizeof(type), (count)), (flags)))
#define repalloc_array(pointer, type, count) \
	((type *) repalloc((pointer), upsell_array_size(sizeof(type), (count))))
#define repalloc_array_extended(pointer, type, count, flags) \
	((type *) repalloc_extended((pointer), upsell_array_size(sizeof(type), (count)), (flags)))

/*
 * PostgreSQL 18 added arguments: RelationGetPrimaryKeyIndex(rel, deferrable_ok)
 * (false keeps the old answer: no deferrable primary key) and
 * index_beginscan(..., instrument, nkeys, norderbys) (NULL: no EXPLAIN
 * ANALYZE counters).
 */
#if PG_VERSION_NUM >= 180000
#define upsell_primary_key_index(rel) RelationGetPrimaryKeyIndex((rel), false)
#define upsell_index_beginscan(heap, index, snapshot, nkeys, norderbys) \
	index_beginscan((heap), (index), (snapshot), NULL, (nkeys), (norderbys))
#else
#define upsell_primary_key_index(rel) RelationGetPrimaryKeyIndex(rel)
#define upsell_index_beginscan(heap, index, snapshot, nkeys, norderbys) \
	index_beginscan((heap), (index), (snapshot), (nkeys), (norderbys))
#endif

/*
 * A GUC check hook's extra is freed by the GUC machinery: with free() up to
 * 15, with guc_free() -- a pfree in the GUC memory context -- from 16 on,
 * where a malloc'd extra crashes the backend at the next SET.
 */
#if PG_VERSION_NUM >= 160000
#include "utils/guc.h"
#define upsell_guc_malloc(size) guc_malloc(LOG, (size))
#else
#define upsell_guc_malloc(size) malloc(size)
#endif

#endif							/* UPSELL_COMPAT_H */
