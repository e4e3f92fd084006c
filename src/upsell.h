/*
 * upsell.h
 *		Declarations shared by the fmgr layer (the .c files in src).
 */
#ifndef UPSELL_H
#define UPSELL_H

#include "fmgr.h"
#include "datatype/timestamp.h"
#include "utils/array.h"
#include "utils/palloc.h"

#include "compat.h"

#include "gapfill.h"

/* settings, see upsell.c */
extern int	upsell_max_basket_size;
extern int	upsell_pairs_per_product;
extern int	upsell_cooccurrence_chunk_pairs;
extern bool upsell_force_weight_change;
extern int	upsell_itemsets_memory_limit;	/* kB, -1: 32 * work_mem */
extern int	upsell_bundle_min_count;
extern int	upsell_refresh_workers;
extern int	upsell_side_build_parallel_workers;
extern int	upsell_bundles_per_product;
extern int	upsell_max_cart_lines;
extern bool upsell_tenant_bound;	/* upsell.tenant_id set: read them through */
extern int64 upsell_bound_tenant;	/* upsell_session_tenant, which checks it */
extern bool upsell_session_tenant(int64 *tenant_id);

/* upsell.c: upsell.itemsets_memory_limit in kB, resolved; 0: no limit */
extern int	upsell_itemsets_limit_kb(void);

/* upsell.c: this process's CPU time (user + system) in ms, -1 when unknown */
extern double upsell_process_cpu_ms(void);

/*
 * refresh_malloc.c: with true, until false (which returns what is free) or
 * the end of the transaction, the process keeps the memory it frees for its
 * next allocations
 */
extern bool upsell_hold_freed_memory_set(bool hold);

/* host_glue.c: shared by the fmgr files */
extern MemoryContext upsell_agg_context(FunctionCallInfo fcinfo, const char *fname);
extern bytea *upsell_alloc_bytea(size_t size, const char *what, const char *hint);
extern int64 *upsell_int8_elems(ArrayType *arr, int *n);
extern ArrayType *upsell_int8_array(const int64 *ids, int n);
extern void upsell_deconstruct(ArrayType *arr, Oid type, Datum **values, bool **nulls, int *n);
extern int	upsell_pin_search_path(void);
extern void upsell_unpin_search_path(int level);

/*
 * local_time.c: the zone of a name (an error if unknown), and the instant a
 * local time of that zone is, as upsell._local_time reads it
 */
struct pg_tz;
extern struct pg_tz *upsell_zone_named(const char *name);
extern TimestampTz upsell_local_time_in(Timestamp ts, struct pg_tz *tz);

/* upgrade.c: why an upgrade is offered, from its evidence (NULL: unknown) */
extern text *upsell_upgrade_evidence(bool paths_null, int64 paths, bool buyers_null, int64 buyers,
									 bool same_group_null, bool same_group);

/* gapfill.c: gap fillers of the cart stage (serving_cart.c) */
extern int	upsell_gap_offers(const char *nsp, int64 tenant_id, TimestampTz built_at, int64 gap,
							  const int64 *skip, int nskip,
							  const char *const *skip_categories, int nskip_categories,
							  const int64 *relevant, const double *relevance, int nrelevant,
							  const int64 *never_a, const int64 *never_b, int nnever,
							  int k, int max_items, GapOffer *out);
extern int64 upsell_gap_price(const char *nsp, int64 tenant_id, TimestampTz built_at, int64 id);

#endif							/* UPSELL_H */
