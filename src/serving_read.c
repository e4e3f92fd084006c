/*
 * serving_read.c
 *		Direct reads of the extension's tables on the request path: the
 *		cache key in serving_state and model_state, the cart's lines in
 *		cart_model (on Citus, in the tenant's shard of it).
 *
 * For lookups this small, a query's executor start and end cost more than
 * the lookups themselves, so the cart reads the cache key and cart_model
 * with heap scans of one row and one index scan, not through SPI.  SELECT
 * privileges are checked as a query would check them.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include "serving.h"
#include "upsell.h"

/* A relation of the extension's schema, opened for reading. */
Relation
serving_open_for_read(const char *name)
{
	Oid			relid = get_relname_relid(name, serving.nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation %s.%s does not exist", serving.nspname, name)));
	return table_open(relid, AccessShareLock);
}

/*
 * The relation holding the tenant's rows of a model table rel, opened for
 * reading: rel itself on one node.  On Citus, where upsell.distribute()
 * made the models distributed tables, rel is an empty shell and the rows
 * are in the tenant's shard, which this node holds when Citus delegated the
 * call to the tenant's worker (upsell._local_shard finds it).  Without
 * Citus's catalog in the database, nothing is asked.
 */
Relation
serving_open_tenant_shard(Relation rel, int64 tenant_id)
{
	Oid			types[2] = {REGCLASSOID, INT8OID};
	Datum		args[2];
	bool		isnull;
	Oid			shard;

	if (!OidIsValid(get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE)))
		return rel;
	args[0] = ObjectIdGetDatum(RelationGetRelid(rel));
	args[1] = Int64GetDatum(tenant_id);
	serving_use_spi();
	if (SPI_execute_with_args(serving_qualify("SELECT @._local_shard($1, $2)"), 2, types, args,
							  NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not find the shard of %s", RelationGetRelationName(rel));
	shard = DatumGetObjectId(serving_col(0, 1, &isnull));
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("the shard of %s holding tenant " INT64_FORMAT " is on another node",
						RelationGetRelationName(rel), tenant_id),
				 errhint("Call the function with a constant tenant_id outside a transaction block, "
						 "so that Citus runs it on the tenant's worker.")));
	if (shard == RelationGetRelid(rel))
		return rel;
	table_close(rel, NoLock);
	return table_open(shard, AccessShareLock);
}

/* Raises unless the user may SELECT from the relation, as a query would. */
void
serving_check_select(Relation rel)
{
	AclResult	acl = pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_SELECT);

	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, get_relkind_objtype(rel->rd_rel->relkind), RelationGetRelationName(rel));
}

/* config_version of a table of one row (a heap scan of it), and the table's OID. */
static int64
read_version_row(const char *table, Oid *relid)
{
	Relation	rel = serving_open_for_read(table);
	TableScanDesc scan;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), "config_version");
	bool		isnull;
	int64		version;

	serving_check_select(rel);
	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("upsell.%s has no column config_version", table)));
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	if (!table_scan_getnextslot(scan, ForwardScanDirection, slot))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("upsell.%s has no row", table)));
	version = DatumGetInt64(slot_getattr(slot, attnum, &isnull));
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	*relid = RelationGetRelid(rel);
	table_close(rel, NoLock);
	return version;
}

/*
 * Reads the cache key: the rules' version (serving_state) and the models'
 * (model_state).  Two rows, so that a refresh, which draws the models'
 * version at its end, never waits for a merchant's transaction that
 * changed a rule and holds the rules' row until it ends (until 1.12 both
 * drew the one row of serving_state: a rule edited in a transaction left
 * open stalled every refresh, and a refresh every merchant's edit).
 */
ServingVersion
serving_read_version(void)
{
	ServingVersion v;
	Oid			model_state_rel;

	v.rules = read_version_row("serving_state", &v.state_rel);
	v.models = read_version_row("model_state", &model_state_rel);
	return v;
}

/*
 * Every tenant's models version (model_versions), sorted by tenant, in cxt:
 * read by a cache once the models' version moved, to empty what it holds
 * of the tenants refreshed since, and only that.  A heap scan, as of the
 * request's snapshot (the one model_state was read at).
 */
TenantVersions
serving_read_tenant_versions(MemoryContext cxt)
{
	Relation	rel = serving_open_for_read("model_versions");
	TupleDesc	desc = RelationGetDescr(rel);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	TableScanDesc scan;
	TenantVersions v = {0};
	int			cap = 16;
	int64	   *pairs;
	int			i;

	serving_check_select(rel);
	if (desc->natts != 2 || TupleDescAttr(desc, 0)->atttypid != INT8OID ||
		TupleDescAttr(desc, 1)->atttypid != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("upsell.model_versions is not (tenant_id bigint, config_version bigint)")));
	pairs = palloc(sizeof(int64) * 2 * cap);
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;

		if (v.n == cap)
		{
			cap *= 2;
			pairs = repalloc(pairs, sizeof(int64) * 2 * cap);
		}
		pairs[2 * v.n] = DatumGetInt64(slot_getattr(slot, 1, &isnull));
		pairs[2 * v.n + 1] = DatumGetInt64(slot_getattr(slot, 2, &isnull));
		v.n++;
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, NoLock);
	/* (the table's primary key: one row per tenant) */
	qsort(pairs, v.n, sizeof(int64) * 2, serving_cmp_int64);
	v.tenants = MemoryContextAlloc(cxt, sizeof(int64) * Max(v.n, 1));
	v.versions = MemoryContextAlloc(cxt, sizeof(int64) * Max(v.n, 1));
	for (i = 0; i < v.n; i++)
	{
		v.tenants[i] = pairs[2 * i];
		v.versions[i] = pairs[2 * i + 1];
	}
	pfree(pairs);
	return v;
}

/* A tenant's models version in v; 0 for one never refreshed since. */
static int64
tenant_version(const TenantVersions *v, int64 tenant_id)
{
	int			i = serving_sorted_index(v->tenants, v->n, tenant_id);

	return i >= 0 ? v->versions[i] : 0;
}

/*
 * The models moved on: drops from a cache (a hash table whose keys begin
 * with the tenant id) the entries of the tenants refreshed since *versions
 * was read, and reads it anew (in cxt, where it was).  forget, if given,
 * releases what an entry holds before it goes.
 */
void
serving_forget_refreshed(HTAB *table, TenantVersions *versions, MemoryContext cxt,
						 void (*forget) (void *entry))
{
	TenantVersions now = serving_read_tenant_versions(cxt);
	HASH_SEQ_STATUS seq;
	void	   *entry;

	hash_seq_init(&seq, table);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		int64		tenant_id = *(const int64 *) entry;

		if (tenant_version(&now, tenant_id) == tenant_version(versions, tenant_id))
			continue;
		if (forget)
			forget(entry);
		/* (removing the entry just returned is allowed during the scan) */
		hash_search(table, entry, HASH_REMOVE, NULL);
	}
	pfree(versions->tenants);
	pfree(versions->versions);
	*versions = now;
}

#define CART_COLUMN_NAME(sym, name) name,
static const char *const cart_model_columns[CART_MODEL_NCOLUMNS] = {
	CART_MODEL_COLUMNS(CART_COLUMN_NAME)
};
#undef CART_COLUMN_NAME

/* Raises unless the table's columns are the ones this file reads by number. */
static void
check_cart_columns(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			i;

	if (desc->natts != CART_MODEL_NCOLUMNS)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("%s has %d columns, not %d", RelationGetRelationName(rel),
						desc->natts, CART_MODEL_NCOLUMNS)));
	for (i = 0; i < CART_MODEL_NCOLUMNS; i++)
		if (TupleDescAttr(desc, i)->attisdropped ||
			strcmp(NameStr(TupleDescAttr(desc, i)->attname), cart_model_columns[i]) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("column %d of %s is not %s", i + 1, RelationGetRelationName(rel),
							cart_model_columns[i])));
}

/* A text[] column as C strings (NULL elements stay NULL), *n its length. */
static char **
text_elems(Datum d, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	char	  **out;
	int			i;

	deconstruct_array(DatumGetArrayTypeP(d), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, n);
	out = palloc(Max(*n, 1) * sizeof(char *));
	for (i = 0; i < *n; i++)
		out[i] = nulls[i] ? NULL : TextDatumGetCString(elems[i]);
	return out;
}

/*
 * One index scan of the cart's lines in cart_model: prices, categories,
 * complements, upgrades.  The values are copies that outlive the scan.
 */
CartLine *
serving_read_cart_lines(int64 tenant_id, const int64 *items, int nitems, int *nlines)
{
	CartLine   *lines = palloc0(Max(nitems, 1) * sizeof(CartLine));
	Relation	rel;
	Relation	index;
	IndexScanDesc scan;
	TupleTableSlot *slot;
	ScanKeyData keys[2];
	int			n = 0;

	/*
	 * The model table as this request's snapshot sees it: refresh replaces a
	 * tenant's rows in one transaction, so the snapshot holds exactly one
	 * version of each line's row.
	 */
	*nlines = 0;
	rel = serving_open_for_read("cart_model");
	serving_check_select(rel);
	if (nitems == 0)
	{
		table_close(rel, NoLock);
		return lines;
	}
	rel = serving_open_tenant_shard(rel, tenant_id);
	check_cart_columns(rel);
	/* the primary key: (tenant_id, product_id), its columns 1 and 2 */
	index = index_open(upsell_primary_key_index(rel), AccessShareLock);
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(tenant_id));
	ScanKeyEntryInitialize(&keys[1], SK_SEARCHARRAY, 2, BTEqualStrategyNumber, InvalidOid,
						   InvalidOid, F_INT8EQ, PointerGetDatum(upsell_int8_array(items, nitems)));
	scan = upsell_index_beginscan(rel, index, GetActiveSnapshot(), 2, 0);
	index_rescan(scan, keys, 2, NULL, 0);
	slot = table_slot_create(rel, NULL);
	while (n < nitems && index_getnext_slot(scan, ForwardScanDirection, slot))
	{
		CartLine   *l = &lines[n++];
		HeapTuple	tup = ExecCopySlotHeapTuple(slot);
		Datum		v[CART_MODEL_NCOLUMNS];
		bool		null[CART_MODEL_NCOLUMNS];
		ArrayType  *sc;
		int			ncat;

		heap_deform_tuple(tup, RelationGetDescr(rel), v, null);
		l->product_id = DatumGetInt64(v[CART_PRODUCT_ID]);
		l->price = null[CART_PRICE] ? NULL : DatumGetNumeric(v[CART_PRICE]);
		l->category = null[CART_CATEGORY] ? NULL : TextDatumGetCString(v[CART_CATEGORY]);
		l->in_stock = DatumGetBool(v[CART_IN_STOCK]);
		l->complements = upsell_int8_elems(DatumGetArrayTypeP(v[CART_COMPLEMENT_IDS]),
										   &l->ncomplements);
		sc = DatumGetArrayTypeP(v[CART_COMPLEMENT_LOG_MISS]);
		if (ArrayGetNItems(ARR_NDIM(sc), ARR_DIMS(sc)) != l->ncomplements ||
			ARR_HASNULL(sc) || ARR_ELEMTYPE(sc) != FLOAT8OID)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the cart_model row of product " INT64_FORMAT " is malformed", l->product_id),
					 errhint("Run CALL upsell.refresh().")));
		l->complement_log_miss = (double *) ARR_DATA_PTR(sc);
		l->complement_categories = text_elems(v[CART_COMPLEMENT_CATEGORIES], &ncat);
		if (ncat != l->ncomplements)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the cart_model row of product " INT64_FORMAT " is malformed", l->product_id),
					 errhint("Run CALL upsell.refresh().")));
		l->substitute_ids = upsell_int8_elems(DatumGetArrayTypeP(v[CART_SUBSTITUTE_IDS]),
											  &l->nsubstitute_ids);
		l->substitute_categories = text_elems(v[CART_SUBSTITUTE_CATEGORIES],
											  &l->nsubstitute_categories);
		if ((l->has_upgrade = !null[CART_UPGRADE_ID]))
		{
			l->upgrade_id = DatumGetInt64(v[CART_UPGRADE_ID]);
			l->upgrade_score = DatumGetFloat8(v[CART_UPGRADE_SCORE]);
			l->upgrade_reason = null[CART_UPGRADE_REASON] ? NULL :
				TextDatumGetCString(v[CART_UPGRADE_REASON]);
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	index_endscan(scan);
	index_close(index, NoLock);
	table_close(rel, NoLock);
	*nlines = n;
	return lines;
}

/*
 * What substitutes some of the lines (their variant groups' other products,
 * the categories that substitute theirs), as cart_model stores it per line.
 */
Substitutes
serving_substitutes_of(const CartLine *lines, int nlines)
{
	Substitutes s;
	int			i,
				j,
				q;

	memset(&s, 0, sizeof(s));
	for (i = 0; i < nlines; i++)
	{
		s.nids += lines[i].nsubstitute_ids;
		s.ncategories += lines[i].nsubstitute_categories;
	}
	s.ids = palloc(Max(s.nids, 1) * sizeof(int64));
	s.categories = palloc(Max(s.ncategories, 1) * sizeof(char *));
	s.nids = 0;
	s.ncategories = 0;
	for (i = 0; i < nlines; i++)
	{
		for (j = 0; j < lines[i].nsubstitute_ids; j++)
			s.ids[s.nids++] = lines[i].substitute_ids[j];
		for (j = 0; j < lines[i].nsubstitute_categories; j++)
		{
			const char *c = lines[i].substitute_categories[j];

			if (c == NULL)
				continue;
			for (q = 0; q < s.ncategories; q++)
				if (strcmp(s.categories[q], c) == 0)
					break;
			if (q == s.ncategories)
				s.categories[s.ncategories++] = c;
		}
	}
	s.nids = serving_sort_unique(s.ids, s.nids);
	return s;
}

bool
serving_is_substitute(const Substitutes *s, int64 id, const char *category)
{
	int			q;

	if (offers_contains(s->ids, s->nids, id))
		return true;
	if (category)
		for (q = 0; q < s->ncategories; q++)
			if (strcmp(s->categories[q], category) == 0)
				return true;
	return false;
}
