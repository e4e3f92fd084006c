/*
 * gapfill.c
 *		fmgr layer of the gap fillers: reads the price-sorted candidates that
 *		refresh stored (model threshold_candidates, one row per tenant),
 *		keeps them per backend until the next refresh, marks what may not be
 *		offered and runs the search of src/core/gapfill.c.
 *
 * Money crosses the boundary as numeric and is integer cents inside.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "catalog/namespace.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "gapfill.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_gap_fill);

/* Candidates of one tenant as of one build, kept across calls. */
typedef struct CandidateCache
{
	bool		valid;
	int64		tenant_id;
	TimestampTz built_at;
	uint64		last_used;
	MemoryContext cxt;
	size_t		n;
	int64	   *price;			/* cents, ascending by (price, id) */
	int64	   *id;
	int32	   *category_of;	/* 1-based index into categories, 0: none */
	int32	   *group_of;		/* variant group number, 0: none */
	uint8	   *substitutes;	/* [a * (ncategories + 1) + b]: categories a
								 * and b substitute each other; NULL: none do */
	uint32	   *by_category;	/* candidates ordered by category, built on
								 * first use */
	size_t	   *category_start; /* by_category[category_start[q] ..
								 * category_start[q + 1]) are of category q */
	uint32	   *by_id;			/* candidate indexes ascending by product id */
	int			ncategories;
	char	  **categories;
	/* scratch of upsell_gap_offers: flags and relevance, reset after use */
	uint8	   *flags;
	double	   *relevance;
	uint32	   *touched;
	size_t		ntouched;
	size_t		touched_cap;
} CandidateCache;

#define CACHE_TENANTS 8

/* steps of the plain three-item search before it gives up (a NOTICE says so) */
#define STEP_BUDGET (50 * 1000 * 1000)

static CandidateCache cache[CACHE_TENANTS];
static uint64 cache_clock;

static const int64 *sort_ids;	/* for cmp_by_id */

static int
cmp_by_id(const void *a, const void *b)
{
	int64		x = sort_ids[*(const uint32 *) a];
	int64		y = sort_ids[*(const uint32 *) b];

	return x < y ? -1 : x > y ? 1 : 0;
}

/* Copies a one-dimensional array without NULLs, or complains. */
static void *
copy_array(ArrayType *arr, Oid elemtype, size_t elemsize, size_t *n, const char *what)
{
	void	   *out;

	if (ARR_ELEMTYPE(arr) != elemtype || ARR_HASNULL(arr) || ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("column %s of the threshold_candidates model is malformed", what),
				 errhint("Run CALL upsell.refresh().")));
	*n = ARR_NDIM(arr) == 0 ? 0 : (size_t) ARR_DIMS(arr)[0];
	out = palloc_extended(Max(*n, 1) * elemsize, MCXT_ALLOC_HUGE);
	if (*n > 0)
		memcpy(out, ARR_DATA_PTR(arr), *n * elemsize);
	return out;
}

/*
 * The cached candidates of a tenant, read again when the stored build is not
 * the cached one.  NULL when the model has no row for the tenant.
 */
static CandidateCache *
get_candidates(const char *nsp, int64 tenant_id, TimestampTz built_at)
{
	CandidateCache *c = NULL;
	int			i;
	char	   *query;
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1];
	bool		isnull;
	HeapTuple	tup;
	TupleDesc	desc;
	MemoryContext old;
	ArrayType  *arr;
	size_t		n,
				nid,
				ncat,
				ngroup,
				npairs,
				k;
	int32	   *pairs;
	Datum	   *cats;
	bool	   *catnulls;
	int			guc_level;
	Oid			relid;
	AclResult	acl;

	/*
	 * The cache is the backend's, the privilege the current role's: checked
	 * on every use, so a role without SELECT on the model (after SET ROLE)
	 * is not served what another role read.
	 */
	relid = get_relname_relid("threshold_candidates", get_namespace_oid(nsp, false));
	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation %s.threshold_candidates does not exist", nsp)));
	acl = pg_class_aclcheck(relid, GetUserId(), ACL_SELECT);
	if (acl != ACLCHECK_OK)
		aclcheck_error(acl, OBJECT_VIEW, "threshold_candidates");

	for (i = 0; i < CACHE_TENANTS; i++)
		if (cache[i].valid && cache[i].tenant_id == tenant_id && cache[i].built_at == built_at)
		{
			cache[i].last_used = ++cache_clock;
			return &cache[i];
		}

	/* a free slot, the stale one of the tenant, or the least recently used */
	for (i = 0; i < CACHE_TENANTS; i++)
		if (!cache[i].valid || cache[i].tenant_id == tenant_id)
		{
			c = &cache[i];
			break;
		}
	if (c == NULL)
	{
		c = &cache[0];
		for (i = 1; i < CACHE_TENANTS; i++)
			if (cache[i].last_used < c->last_used)
				c = &cache[i];
	}
	if (c->cxt)
		MemoryContextDelete(c->cxt);
	memset(c, 0, sizeof(*c));

	query = psprintf("SELECT built_at, prices, product_ids, category_of, categories, group_of, substitutes "
					 "FROM %s.threshold_candidates WHERE tenant_id OPERATOR(pg_catalog.=) $1",
					 quote_identifier(nsp));
	args[0] = Int64GetDatum(tenant_id);
	SPI_connect();
	guc_level = upsell_pin_search_path();
	if (SPI_execute_with_args(query, 1, argtypes, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the threshold_candidates model");
	if (SPI_processed == 0)
	{
		upsell_unpin_search_path(guc_level);
		SPI_finish();
		return NULL;
	}
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;

	c->cxt = AllocSetContextCreate(TopMemoryContext, "upsell gap filler candidates",
								   ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(c->cxt);
	c->tenant_id = tenant_id;
	c->built_at = DatumGetTimestampTz(SPI_getbinval(tup, desc, 1, &isnull));
	arr = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 2, &isnull));
	c->price = copy_array(arr, INT8OID, sizeof(int64), &n, "prices");
	arr = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 3, &isnull));
	c->id = copy_array(arr, INT8OID, sizeof(int64), &nid, "product_ids");
	arr = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 4, &isnull));
	c->category_of = copy_array(arr, INT4OID, sizeof(int32), &ncat, "category_of");
	if (nid != n || ncat != n)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the threshold_candidates model of tenant " INT64_FORMAT " has arrays of different lengths", tenant_id),
				 errhint("Run CALL upsell.refresh().")));
	arr = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 5, &isnull));
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &cats, &catnulls, &c->ncategories);
	c->categories = palloc(Max(c->ncategories, 1) * sizeof(char *));
	for (i = 0; i < c->ncategories; i++)
		c->categories[i] = catnulls[i] ? NULL : TextDatumGetCString(cats[i]);
	arr = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 6, &isnull));
	c->group_of = copy_array(arr, INT4OID, sizeof(int32), &ngroup, "group_of");
	arr = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 7, &isnull));
	pairs = copy_array(arr, INT4OID, sizeof(int32), &npairs, "substitutes");
	if (ngroup != n || npairs % 2 != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the threshold_candidates model of tenant " INT64_FORMAT " has arrays of different lengths", tenant_id),
				 errhint("Run CALL upsell.refresh().")));
	if (npairs > 0)
	{
		size_t		side = (size_t) c->ncategories + 1;

		c->substitutes = palloc_extended(side * side, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
		for (k = 0; k < npairs; k += 2)
		{
			if (pairs[k] < 1 || pairs[k] > c->ncategories || pairs[k + 1] < 1 || pairs[k + 1] > c->ncategories)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("the threshold_candidates model of tenant " INT64_FORMAT " names a category it does not have", tenant_id),
						 errhint("Run CALL upsell.refresh().")));
			/* (both ways: substitutes of each other) */
			c->substitutes[pairs[k] * side + pairs[k + 1]] = 1;
			c->substitutes[pairs[k + 1] * side + pairs[k]] = 1;
		}
	}
	c->n = n;

	/* the search relies on the order; a hand-edited model must not crash it */
	for (k = 0; k < n; k++)
	{
		if (c->price[k] <= 0 ||
			(k > 0 && (c->price[k - 1] > c->price[k] ||
					   (c->price[k - 1] == c->price[k] && c->id[k - 1] >= c->id[k]))) ||
			c->category_of[k] < 0 || c->category_of[k] > c->ncategories || c->group_of[k] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the threshold_candidates model of tenant " INT64_FORMAT " is not sorted by price", tenant_id),
					 errhint("Run CALL upsell.refresh().")));
	}
	if (n > PG_UINT32_MAX - 2)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many gap filler candidates: " UINT64_FORMAT, (uint64) n)));
	c->by_id = palloc_extended(Max(n, 1) * sizeof(uint32), MCXT_ALLOC_HUGE);
	for (k = 0; k < n; k++)
		c->by_id[k] = (uint32) k;
	sort_ids = c->id;
	qsort(c->by_id, n, sizeof(uint32), cmp_by_id);
	for (k = 1; k < n; k++)
		if (c->id[c->by_id[k - 1]] == c->id[c->by_id[k]])
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("product " INT64_FORMAT " appears twice in the threshold_candidates model", c->id[c->by_id[k]]),
					 errhint("Run CALL upsell.refresh().")));
	MemoryContextSwitchTo(old);
	upsell_unpin_search_path(guc_level);
	SPI_finish();

	c->valid = true;
	c->last_used = ++cache_clock;
	return c;
}

/* Candidate index of a product id, -1 if it is not a candidate. */
static int64
find_candidate(const CandidateCache *c, int64 id)
{
	size_t		lo = 0,
				hi = c->n;

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (c->id[c->by_id[mid]] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo < c->n && c->id[c->by_id[lo]] == id) ? (int64) c->by_id[lo] : -1;
}

static void
check_type(ArrayType *arr, Oid type, const char *name)
{
	if (ARR_ELEMTYPE(arr) != type)
		elog(ERROR, "%s has element type %u, expected %u", name, ARR_ELEMTYPE(arr), type);
}

/* Marks candidate x in the scratch flags, remembering it for the reset. */
static void
flag_candidate(CandidateCache *c, int64 x, uint8 flag, double relevance)
{
	if (c->flags[x] == GAP_PLAIN)
	{
		if (c->ntouched == c->touched_cap)
		{
			c->touched_cap *= 2;
			c->touched = repalloc_huge(c->touched, c->touched_cap * sizeof(uint32));
		}
		c->touched[c->ntouched++] = (uint32) x;
	}
	c->flags[x] = flag;
	c->relevance[x] = relevance;
}

/* Clears what the last request (perhaps one that failed) marked. */
static void
reset_flags(CandidateCache *c)
{
	size_t		t;

	if (c->flags == NULL)
	{
		c->flags = MemoryContextAllocExtended(c->cxt, c->n, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
		c->relevance = MemoryContextAllocExtended(c->cxt, c->n * sizeof(double), MCXT_ALLOC_HUGE);
		c->touched_cap = 64;
		c->touched = MemoryContextAlloc(c->cxt, c->touched_cap * sizeof(uint32));
	}
	for (t = 0; t < c->ntouched; t++)
		c->flags[c->touched[t]] = GAP_PLAIN;
	c->ntouched = 0;
}

/* Products never to offer: the cart, the merchant's exclusions. */
static void
skip_ids(CandidateCache *c, const int64 *ids, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		int64		x = find_candidate(c, ids[i]);

		if (x >= 0)
			flag_candidate(c, x, GAP_SKIP, 0);
	}
}

/*
 * Products of the named categories are never offered (the merchant's
 * exclusions, the categories that substitute a cart line).  The candidates
 * are indexed by category once per build, so that a request costs the
 * products it skips, not the catalog.
 */
static void
skip_categories(CandidateCache *c, const char *const *names, int n)
{
	int			i,
				q;
	size_t		x;

	if (n == 0)
		return;
	if (c->by_category == NULL)
	{
		size_t	   *start = MemoryContextAllocZero(c->cxt, (c->ncategories + 2) * sizeof(size_t));
		size_t	   *fill = palloc((c->ncategories + 1) * sizeof(size_t));
		uint32	   *order = MemoryContextAllocExtended(c->cxt, Max(c->n, 1) * sizeof(uint32),
													   MCXT_ALLOC_HUGE);

		/* a counting sort by category number */
		for (x = 0; x < c->n; x++)
			start[c->category_of[x] + 1]++;
		for (q = 0; q <= c->ncategories; q++)
			start[q + 1] += start[q];
		memcpy(fill, start, (c->ncategories + 1) * sizeof(size_t));
		for (x = 0; x < c->n; x++)
			order[fill[c->category_of[x]]++] = (uint32) x;
		pfree(fill);
		c->by_category = order;
		c->category_start = start;
	}
	for (i = 0; i < n; i++)
	{
		if (names[i] == NULL)
			continue;
		for (q = 0; q < c->ncategories; q++)
			if (c->categories[q] && strcmp(c->categories[q], names[i]) == 0)
			{
				for (x = c->category_start[q + 1]; x < c->category_start[q + 2]; x++)
					flag_candidate(c, c->by_category[x], GAP_SKIP, 0);
				break;
			}
	}
}

/* The cart's complements, relevance in (0, 1] (more is capped, less ignored). */
static void
relevant_ids(CandidateCache *c, const int64 *ids, const double *relevance, int n)
{
	int			i;

	for (i = 0; i < n; i++)
	{
		int64		x;

		if (!(relevance[i] > 0.0))
			continue;			/* also NaN */
		x = find_candidate(c, ids[i]);
		if (x >= 0 && c->flags[x] != GAP_SKIP)
			flag_candidate(c, x, GAP_RELEVANT, Min(relevance[i], 1.0));
	}
}

/*
 * The search over the marked candidates.  Flags live in the cached
 * candidates and only the entries marked are reset, so a request costs what
 * it marks, not the catalog's size.
 */
static int
search_marked(CandidateCache *c, int64 gap, int k, int max_items,
			  const int64 *never_a, const int64 *never_b, int nnever, GapOffer *out, bool *complete)
{
	GapCatalog	cat;
	GapRequest	req;

	cat.n = c->n;
	cat.price = c->price;
	cat.id = c->id;
	req.gap = gap;
	req.k = k;
	req.max_items = max_items;
	req.flags = c->flags;
	req.relevance = c->relevance;
	req.step_budget = STEP_BUDGET;
	req.group = c->group_of;
	req.category = c->category_of;
	req.substitutes = c->substitutes;
	req.ncategories = c->ncategories;
	req.never_a = never_a;
	req.never_b = never_b;
	req.nnever = nnever;
	return gap_search(&cat, &req, out, complete);
}

/*
 * _gap_fill(tenant bigint, built_at timestamptz, gap numeric, cart bigint[],
 *			 excluded_ids bigint[], excluded_categories text[],
 *			 relevant_ids bigint[], relevance float8[], k int, max_items int,
 *			 never_a bigint[], never_b bigint[])
 * RETURNS TABLE (product_ids bigint[], added numeric, relevance float8, score float8)
 *
 * Called by upsell.gap_fillers, which validates the arguments.
 */
Datum
upsell_gap_fill(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		tenant_id;
	TimestampTz built_at;
	Numeric		gap_num;
	int64		gap;
	int			k,
				max_items;
	CandidateCache *c;
	int64	   *ids;
	int			nids,
				i,
				noffers;
	GapOffer   *offers;
	bool		complete;
	int64	   *never_a,
			   *never_b;
	int			nnever;

	InitMaterializedSRF(fcinfo, 0);
	for (i = 0; i < 12; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("argument %d of _gap_fill must not be NULL", i + 1)));
	tenant_id = PG_GETARG_INT64(0);
	built_at = PG_GETARG_TIMESTAMPTZ(1);
	gap_num = PG_GETARG_NUMERIC(2);
	k = PG_GETARG_INT32(8);
	max_items = PG_GETARG_INT32(9);
	if (k < 0 || k > GAP_MAX_K)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be between 0 and %d, not %d", GAP_MAX_K, k)));
	if (max_items < 1 || max_items > GAP_MAX_ITEMS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_items must be between 1 and %d, not %d", GAP_MAX_ITEMS, max_items)));

	/* cents, rounded up: the offer must reach the threshold */
	gap = DatumGetInt64(DirectFunctionCall1(numeric_int8,
											DirectFunctionCall1(numeric_ceil,
																DirectFunctionCall2(numeric_mul,
																					NumericGetDatum(gap_num),
																					NumericGetDatum(int64_to_numeric(100))))));
	if (gap <= 0 || k == 0)
		PG_RETURN_NULL();

	/* the model lives in the extension's schema: the one of this function */
	c = get_candidates(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid)),
					   tenant_id, built_at);
	if (c == NULL || c->n == 0)
		PG_RETURN_NULL();
	reset_flags(c);

	/* the cart and the merchant's exclusions are never offered */
	for (i = 3; i <= 4; i++)
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(i);

		check_type(arr, INT8OID, i == 3 ? "cart" : "excluded_ids");
		ids = upsell_int8_elems(arr, &nids);
		skip_ids(c, ids, nids);
	}
	{
		ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(5);
		Datum	   *d;
		bool	   *nulls;
		int			m,
					j;
		char	  **names;

		check_type(arr, TEXTOID, "excluded_categories");
		deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &d, &nulls, &m);
		names = palloc(Max(m, 1) * sizeof(char *));
		for (j = 0; j < m; j++)
			names[j] = nulls[j] ? NULL : TextDatumGetCString(d[j]);
		skip_categories(c, (const char *const *) names, m);
	}
	/* complements of the cart */
	{
		ArrayType  *rid = PG_GETARG_ARRAYTYPE_P(6);
		ArrayType  *rsc = PG_GETARG_ARRAYTYPE_P(7);
		Datum	   *d1,
				   *d2;
		bool	   *n1,
				   *n2;
		int			m1,
					m2,
					j,
					nr = 0;
		int64	   *rel_ids;
		double	   *rel;

		check_type(rid, INT8OID, "relevant_ids");
		check_type(rsc, FLOAT8OID, "relevance");
		deconstruct_array(rid, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &d1, &n1, &m1);
		deconstruct_array(rsc, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &d2, &n2, &m2);
		if (m1 != m2)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("relevant_ids and relevance must have the same length, not %d and %d", m1, m2)));
		rel_ids = palloc(Max(m1, 1) * sizeof(int64));
		rel = palloc(Max(m1, 1) * sizeof(double));
		for (j = 0; j < m1; j++)
			if (!n1[j] && !n2[j])
			{
				rel_ids[nr] = DatumGetInt64(d1[j]);
				rel[nr++] = DatumGetFloat8(d2[j]);
			}
		relevant_ids(c, rel_ids, rel, nr);
	}

	/* the merchant's pairs never offered together ("never a next to b") */
	{
		ArrayType  *a = PG_GETARG_ARRAYTYPE_P(10);
		ArrayType  *b = PG_GETARG_ARRAYTYPE_P(11);

		check_type(a, INT8OID, "never_a");
		check_type(b, INT8OID, "never_b");
		never_a = upsell_int8_elems(a, &nnever);
		never_b = upsell_int8_elems(b, &nids);
		if (nids != nnever)
			ereport(ERROR,
					(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
					 errmsg("never_a and never_b must have the same length, not %d and %d", nnever, nids)));
	}

	offers = palloc(k * sizeof(GapOffer));
	noffers = search_marked(c, gap, k, max_items, never_a, never_b, nnever, offers, &complete);
	reset_flags(c);
	if (!complete)
		ereport(NOTICE,
				(errmsg("upsell: the search of three-item offers stopped after %lld steps",
						(long long) STEP_BUDGET),
				 errdetail("Offers of three items may not be the ones of least overshoot; offers of one and two items are exact.")));

	for (i = 0; i < noffers; i++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = PointerGetDatum(upsell_int8_array(offers[i].ids, offers[i].n));
		values[1] = NumericGetDatum(int64_div_fast_to_numeric(offers[i].added, 2));
		values[2] = Float8GetDatum(offers[i].relevance);
		values[3] = Float8GetDatum(offers[i].score);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	PG_RETURN_NULL();
}

/*
 * Gap fillers for the cart stage (src/serving_cart.c), without the arrays of
 * _gap_fill: the products never to offer (skip) and the cart's complements
 * with their relevance in (0, 1].  Returns the number of offers written to
 * out (room for k); -1 when the tenant has no candidates as of built_at.
 */
/* The price in cents of a candidate (in stock, priced), -1 for another product. */
int64
upsell_gap_price(const char *nsp, int64 tenant_id, TimestampTz built_at, int64 id)
{
	CandidateCache *c = get_candidates(nsp, tenant_id, built_at);
	int64		x;

	if (c == NULL)
		return -1;
	x = find_candidate(c, id);
	return x >= 0 ? c->price[x] : -1;
}

int
upsell_gap_offers(const char *nsp, int64 tenant_id, TimestampTz built_at, int64 gap,
				  const int64 *skip, int nskip,
				  const char *const *skip_cats, int nskip_cats,
				  const int64 *relevant, const double *relevance, int nrelevant,
				  const int64 *never_a, const int64 *never_b, int nnever,
				  int k, int max_items, GapOffer *out)
{
	CandidateCache *c = get_candidates(nsp, tenant_id, built_at);
	bool		complete;
	int			n;

	if (c == NULL || c->n == 0)
		return -1;
	reset_flags(c);
	skip_ids(c, skip, nskip);
	skip_categories(c, skip_cats, nskip_cats);
	relevant_ids(c, relevant, relevance, nrelevant);
	n = search_marked(c, gap, k, max_items, never_a, never_b, nnever, out, &complete);
	reset_flags(c);
	return n;
}
