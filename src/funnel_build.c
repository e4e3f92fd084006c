/*
 * funnel_build.c
 *		The funnel's builders' joins in one pass over each model they read:
 *		_product_page_lists (the product page's 12 best offers per product)
 *		and _cart_lines (a cart line's complements and best upgrade), and the
 *		ladder rule they apply to upgrades (_upgrade_on_ladder).  The catalog's
 *		facts (stock, category, variant group, price) are read once into a
 *		hash table; pair_list_model is read once and each product's
 *		offers are ranked (src/core/page_rank.c) in product order,
 *		instead of hash-joining product_model to every pair and sorting
 *		millions of rows three times (the SQL builders' plans).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/float.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/tuplestore.h"

#include "page_rank.h"
#include "query_stream.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_product_page_lists);
PG_FUNCTION_INFO_V1(upsell_cart_lines);
PG_FUNCTION_INFO_V1(upsell_upgrade_on_ladder);

/* ---- id -> index and text -> index hash tables ---------------------------- */

typedef struct IdEntry
{
	int64		id;
	int32		idx;
	char		status;
} IdEntry;

#define SH_PREFIX idmap
#define SH_ELEMENT_TYPE IdEntry
#define SH_KEY_TYPE int64
#define SH_KEY id
#define SH_HASH_KEY(tb, key) murmurhash32((uint32) (key) ^ murmurhash32((uint32) ((uint64) (key) >> 32)))
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

typedef struct NameEntry
{
	const char *name;
	uint32		hash;
	int32		idx;
	char		status;
} NameEntry;

#define SH_PREFIX namemap
#define SH_ELEMENT_TYPE NameEntry
#define SH_KEY_TYPE const char *
#define SH_KEY name
#define SH_HASH_KEY(tb, key) hash_bytes((const unsigned char *) (key), strlen(key))
#define SH_EQUAL(tb, a, b) (strcmp(a, b) == 0)
#define SH_STORE_HASH
#define SH_GET_HASH(tb, a) ((a)->hash)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* ---- the catalog's facts -------------------------------------------------- */

/* what every pair looks up (kept small: 3M random lookups) */
typedef struct Product
{
	int64		id;
	int32		category;		/* index into Catalog.categories, -1: NULL */
	int32		group;			/* variant group's index, -1: NULL */
	bool		in_stock;
} Product;

/* what only upgrades look up */
typedef struct ProductPrice
{
	bool		has_price;
	bool		has_cap;
	Datum		price;			/* numeric */
	Datum		upgrade_cap;	/* price * 1.5, computed when first needed */
	char	   *title;			/* NULL: none */
} ProductPrice;

typedef struct Catalog
{
	const char *nsp;			/* quoted schema */
	int64		tenant_id;
	Product    *products;
	ProductPrice *prices;
	int			nproducts;
	int			cap;
	idmap_hash *by_id;
	/* ids within a range not much wider than their number: index by id */
	int32	   *dense;
	int64		dense_min;
	int64		dense_len;
	int32	   *order;			/* product indexes by id */
	int32	   *rank;			/* index -> position in order */
	namemap_hash *category_ids;
	namemap_hash *group_ids;
	char	  **categories;		/* category names by index */
	int			ncategories;
	int			ngroups;
	idmap_hash *substitutes;	/* category pairs (a << 32 | b) whose products substitute */
	Datum		one_and_a_half; /* numeric 1.5, made when first needed */
} Catalog;

static int32
name_index(namemap_hash *map, const char *name, int *count)
{
	bool		found;
	NameEntry  *e = namemap_insert(map, name, &found);

	if (!found)
	{
		e->name = pstrdup(name);
		e->idx = (*count)++;
	}
	return e->idx;
}

static int32
name_lookup(namemap_hash *map, const char *name)
{
	NameEntry  *e = namemap_lookup(map, name);

	return e ? e->idx : -1;
}

static void catalog_index_ids(Catalog *c);

static void
catalog_row(Datum *values, bool *nulls, void *arg)
{
	Catalog    *c = (Catalog *) arg;
	Product    *p;
	IdEntry    *e;
	bool		found;

	CHECK_FOR_INTERRUPTS();
	if (c->nproducts == c->cap)
	{
		c->cap *= 2;
		c->products = repalloc_huge(c->products, (Size) c->cap * sizeof(Product));
		c->prices = repalloc_huge(c->prices, (Size) c->cap * sizeof(ProductPrice));
	}
	p = &c->products[c->nproducts];
	p->id = DatumGetInt64(values[0]);
	p->in_stock = DatumGetBool(values[1]);
	c->prices[c->nproducts].has_price = !nulls[2];
	c->prices[c->nproducts].price = nulls[2] ? (Datum) 0 : datumCopy(values[2], false, -1);
	c->prices[c->nproducts].has_cap = false;
	c->prices[c->nproducts].title = nulls[5] ? NULL : TextDatumGetCString(values[5]);
	if (nulls[3])
		p->category = -1;
	else
	{
		int			before = c->ncategories;

		p->category = name_index(c->category_ids, TextDatumGetCString(values[3]), &c->ncategories);
		if (c->ncategories > before)
		{
			c->categories = c->categories
				? repalloc(c->categories, c->ncategories * sizeof(char *))
				: palloc(sizeof(char *));
			c->categories[p->category] = TextDatumGetCString(values[3]);
		}
	}
	p->group = nulls[4] ? -1 : name_index(c->group_ids, TextDatumGetCString(values[4]), &c->ngroups);
	e = idmap_insert(c->by_id, p->id, &found);
	if (found)
		elog(ERROR, "product " INT64_FORMAT " is twice in product_model", p->id);
	e->idx = c->nproducts++;
}

static void
substitute_row(Datum *values, bool *nulls, void *arg)
{
	Catalog    *c = (Catalog *) arg;
	int32		a = name_lookup(c->category_ids, TextDatumGetCString(values[0]));
	int32		b = name_lookup(c->category_ids, TextDatumGetCString(values[1]));
	bool		found;

	/* a category no product has: no product pair can match it */
	if (a >= 0 && b >= 0)
		(void) idmap_insert(c->substitutes, ((int64) a << 32) | (uint32) b, &found);
}

/* Reads the tenant's product_model and its substitute categories. */
static void
catalog_load(Catalog *c, const char *nsp, int64 tenant_id)
{
	static const Oid ptypes[6] = {INT8OID, BOOLOID, NUMERICOID, TEXTOID, TEXTOID, TEXTOID};
	static const char *const pnames[6] = {"product_id bigint", "in_stock boolean", "price numeric",
	"category text", "variant_group text", "title text"};
	static const Oid stypes[2] = {TEXTOID, TEXTOID};
	static const char *const snames[2] = {"category text", "other_category text"};
	char	   *q;

	memset(c, 0, sizeof *c);
	c->nsp = nsp;
	c->tenant_id = tenant_id;
	c->cap = 1024;
	c->products = palloc_extended(c->cap * sizeof(Product), MCXT_ALLOC_HUGE);
	c->prices = palloc_extended(c->cap * sizeof(ProductPrice), MCXT_ALLOC_HUGE);
	c->by_id = idmap_create(CurrentMemoryContext, 1024, NULL);
	c->category_ids = namemap_create(CurrentMemoryContext, 64, NULL);
	c->group_ids = namemap_create(CurrentMemoryContext, 1024, NULL);
	c->substitutes = idmap_create(CurrentMemoryContext, 64, NULL);
	q = psprintf("SELECT m.product_id, m.in_stock, m.price, m.category, m.variant_group, m.title "
				 "FROM %s.product_model m WHERE m.tenant_id OPERATOR(pg_catalog.=) " INT64_FORMAT,
				 nsp, tenant_id);
	ups_stream_query_stable(q, 6, ptypes, pnames, catalog_row, c);
	q = psprintf("SELECT s.category, s.other_category FROM %s.category_model s "
				 "WHERE s.tenant_id OPERATOR(pg_catalog.=) " INT64_FORMAT " AND s.substitutes",
				 nsp, tenant_id);
	ups_stream_query_stable(q, 2, stypes, snames, substitute_row, c);
	catalog_index_ids(c);
}

static int
cmp_product_id(const void *x, const void *y, void *arg)
{
	const Product *products = (const Product *) arg;
	int64		a = products[*(const int32 *) x].id;
	int64		b = products[*(const int32 *) y].id;

	return a < b ? -1 : (a > b ? 1 : 0);
}

/* The products in id order, and a direct index when the ids are dense. */
static void
catalog_index_ids(Catalog *c)
{
	int64		lo = PG_INT64_MAX,
				hi = PG_INT64_MIN;

	c->order = palloc_extended(Max(c->nproducts, 1) * sizeof(int32), MCXT_ALLOC_HUGE);
	c->rank = palloc_extended(Max(c->nproducts, 1) * sizeof(int32), MCXT_ALLOC_HUGE);
	for (int i = 0; i < c->nproducts; i++)
	{
		c->order[i] = i;
		lo = Min(lo, c->products[i].id);
		hi = Max(hi, c->products[i].id);
	}
	qsort_arg(c->order, c->nproducts, sizeof(int32), cmp_product_id, c->products);
	for (int i = 0; i < c->nproducts; i++)
		c->rank[c->order[i]] = i;
	/* (hi - lo computed in uint64: the ids may span the whole int8 range) */
	if (c->nproducts > 0 && (uint64) hi - (uint64) lo < (uint64) c->nproducts * 4 + 1024)
	{
		c->dense_min = lo;
		c->dense_len = (int64) ((uint64) hi - (uint64) lo) + 1;
		c->dense = palloc_extended(c->dense_len * sizeof(int32), MCXT_ALLOC_HUGE);
		memset(c->dense, 0xff, c->dense_len * sizeof(int32));
		for (int i = 0; i < c->nproducts; i++)
			c->dense[c->products[i].id - lo] = i;
	}
}

/* The index of a product of product_model, -1 for none. */
static inline int32
catalog_index(Catalog *c, int64 id)
{
	IdEntry    *e;

	if (c->dense)
	{
		uint64		off = (uint64) id - (uint64) c->dense_min;

		return off < (uint64) c->dense_len ? c->dense[off] : -1;
	}
	e = idmap_lookup(c->by_id, id);
	return e ? e->idx : -1;
}

static inline Product *
catalog_product(Catalog *c, int64 id)
{
	int32		i = catalog_index(c, id);

	return i >= 0 ? &c->products[i] : NULL;
}

/*
 * Whether b substitutes a: upsell.is_substitute (other products of its
 * variant group, or of a category whose products substitute a's).
 */
static inline bool
catalog_substitutes(Catalog *c, const Product *a, const Product *b)
{
	if (a->id == b->id)
		return false;
	if (a->group >= 0 && a->group == b->group)
		return true;
	return a->category >= 0 && b->category >= 0 &&
		idmap_lookup(c->substitutes, ((int64) a->category << 32) | (uint32) b->category) != NULL;
}

/* a.price < m.price <= a.price * 1.5, false when either is NULL */
static bool
catalog_within_upgrade_price(Catalog *c, const Product *ap, const Product *mp)
{
	ProductPrice *a = &c->prices[ap - c->products];
	ProductPrice *m = &c->prices[mp - c->products];

	if (!a->has_price || !m->has_price)
		return false;
	if (!a->has_cap)
	{
		/* (in the build's memory, as the catalog: never kept across calls) */
		if (c->one_and_a_half == (Datum) 0)
			c->one_and_a_half = DirectFunctionCall3(numeric_in, CStringGetDatum("1.5"),
													ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
		a->upgrade_cap = DirectFunctionCall2(numeric_mul, a->price, c->one_and_a_half);
		a->has_cap = true;
	}
	return DatumGetBool(DirectFunctionCall2(numeric_gt, m->price, a->price)) &&
		DatumGetBool(DirectFunctionCall2(numeric_le, m->price, a->upgrade_cap));
}

/*
 * The complements of every product: the pairs of pair_list_model whose
 * products are both in product_model, the other in stock and no substitute
 * of the first (one unordered scan of the lists, each in its rank order),
 * grouped by the first product in id order.
 */
typedef struct Complements
{
	Catalog    *catalog;
	/* as read: the first product's rank, the other's index, the score */
	int32	   *ranks;
	int32	   *others;
	double	   *scores;
	int64		n,
				cap;
	/* grouped: the complements of the product of rank r are [start[r], start[r + 1]) */
	int64	   *start;
	int32	   *by_rank_others;
	double	   *by_rank_scores;
} Complements;

/* A product's list: other_ids and score arrays of the same length. */
static void
complement_row(Datum *values, bool *nulls, void *arg)
{
	Complements *x = (Complements *) arg;
	Catalog    *c = x->catalog;
	int32		a = catalog_index(c, DatumGetInt64(values[0]));
	ArrayType  *ids,
			   *scores;
	const int64 *id;
	const float8 *score;
	int			n;

	CHECK_FOR_INTERRUPTS();
	if (a < 0)
		return;
	ids = DatumGetArrayTypeP(values[1]);
	scores = DatumGetArrayTypeP(values[2]);
	n = ArrayGetNItems(ARR_NDIM(ids), ARR_DIMS(ids));
	if (ARR_NDIM(ids) > 1 || ARR_HASNULL(ids) || ARR_HASNULL(scores) ||
		ARR_NDIM(scores) != ARR_NDIM(ids) ||
		ArrayGetNItems(ARR_NDIM(scores), ARR_DIMS(scores)) != n)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the pair list of product " INT64_FORMAT " has other_ids and scores of different shapes or NULLs",
						DatumGetInt64(values[0]))));
	id = (const int64 *) ARR_DATA_PTR(ids);
	score = (const float8 *) ARR_DATA_PTR(scores);
	for (int i = 0; i < n; i++)
	{
		int32		o = catalog_index(c, id[i]);

		if (o < 0 || !c->products[o].in_stock || catalog_substitutes(c, &c->products[a], &c->products[o]))
			continue;
		if (x->n == x->cap)
		{
			x->cap *= 2;
			x->ranks = repalloc_huge(x->ranks, x->cap * sizeof(int32));
			x->others = repalloc_huge(x->others, x->cap * sizeof(int32));
			x->scores = repalloc_huge(x->scores, x->cap * sizeof(double));
		}
		x->ranks[x->n] = c->rank[a];
		x->others[x->n] = o;
		x->scores[x->n] = score[i];
		x->n++;
	}
	/* (detoasted copies: freed, not kept until the build's end) */
	if ((Pointer) ids != DatumGetPointer(values[1]))
		pfree(ids);
	if ((Pointer) scores != DatumGetPointer(values[2]))
		pfree(scores);
}

/*
 * The products a builder computes, as a condition of its loaders' queries
 * on the column given: all of them without a list (only NULL), else those
 * of the array (what an incremental refresh computes again).
 */
static const char *
products_condition(const char *column, const char *only)
{
	if (only == NULL)
		return "";
	return psprintf(" AND %s OPERATOR(pg_catalog.=) ANY (%s::pg_catalog.int8[])", column,
					quote_literal_cstr(only));
}

/*
 * A builder's second argument, the products it computes (bigint[]), as the
 * array's text for products_condition; NULL when absent or NULL (all).
 */
static char *
products_arg(FunctionCallInfo fcinfo)
{
	Oid			output;
	bool		varlena;

	if (PG_NARGS() < 2 || PG_ARGISNULL(1))
		return NULL;
	getTypeOutputInfo(INT8ARRAYOID, &output, &varlena);
	return OidOutputFunctionCall(output, PG_GETARG_DATUM(1));
}

static void
complements_load(Complements *x, Catalog *c, const char *only)
{
	static const Oid types[3] = {INT8OID, INT8ARRAYOID, FLOAT8ARRAYOID};
	static const char *const names[3] = {"product_id bigint", "other_ids bigint[]", "score float8[]"};
	int64	   *fill;

	memset(x, 0, sizeof *x);
	x->catalog = c;
	x->cap = 1024;
	x->ranks = palloc_extended(x->cap * sizeof(int32), MCXT_ALLOC_HUGE);
	x->others = palloc_extended(x->cap * sizeof(int32), MCXT_ALLOC_HUGE);
	x->scores = palloc_extended(x->cap * sizeof(double), MCXT_ALLOC_HUGE);
	ups_stream_query_stable(psprintf("SELECT p.product_id, p.other_ids, p.score FROM %s.pair_list_model p "
									 "WHERE p.tenant_id OPERATOR(pg_catalog.=) " INT64_FORMAT "%s",
									 c->nsp, c->tenant_id, products_condition("p.product_id", only)),
							3, types, names, complement_row, x);
	/* a counting sort by rank, in the order read within a product */
	x->start = palloc_extended((c->nproducts + 1) * sizeof(int64), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	for (int64 i = 0; i < x->n; i++)
		x->start[x->ranks[i] + 1]++;
	for (int r = 0; r < c->nproducts; r++)
		x->start[r + 1] += x->start[r];
	fill = palloc_extended((c->nproducts + 1) * sizeof(int64), MCXT_ALLOC_HUGE);
	memcpy(fill, x->start, (c->nproducts + 1) * sizeof(int64));
	x->by_rank_others = palloc_extended(Max(x->n, 1) * sizeof(int32), MCXT_ALLOC_HUGE);
	x->by_rank_scores = palloc_extended(Max(x->n, 1) * sizeof(double), MCXT_ALLOC_HUGE);
	for (int64 i = 0; i < x->n; i++)
	{
		int64		k = fill[x->ranks[i]]++;

		x->by_rank_others[k] = x->others[i];
		x->by_rank_scores[k] = x->scores[i];
	}
	pfree(fill);
	pfree(x->ranks);
	pfree(x->others);
	pfree(x->scores);
	x->ranks = x->others = NULL;
	x->scores = NULL;
}

static const char *
schema_of(FunctionCallInfo fcinfo)
{
	return quote_identifier(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid)));
}

/* ---- the upgrades a stage offers ---------------------------------------- */

/*
 * An upgrade of upgrade_model that the product page and the cart may offer:
 * in stock, pricier than the product up to 1.5x its price, and within its
 * variant group or up a ladder its buyers climb (_upgrade_on_ladder).
 */
typedef struct Upgrade
{
	int64		product_id;
	int64		candidate_id;
	double		score;
	int64		paths;
	int64		buyers;
	bool		same_group;
	bool		paths_null;
	bool		buyers_null;
	bool		same_group_null;
} Upgrade;

/* the offerable upgrades of every product, in product order */
typedef struct Upgrades
{
	Catalog    *catalog;
	Upgrade    *u;
	int			n,
				cap;
} Upgrades;

/* SQL's three-valued logic, for the ladder rule as _upgrade_on_ladder says it */
typedef enum
{
	TRI_FALSE,
	TRI_TRUE,
	TRI_NULL
} Tri;

static Tri
tri_and(Tri a, Tri b)
{
	if (a == TRI_FALSE || b == TRI_FALSE)
		return TRI_FALSE;
	return a == TRI_TRUE && b == TRI_TRUE ? TRI_TRUE : TRI_NULL;
}

static Tri
tri_or(Tri a, Tri b)
{
	if (a == TRI_TRUE || b == TRI_TRUE)
		return TRI_TRUE;
	return a == TRI_FALSE && b == TRI_FALSE ? TRI_FALSE : TRI_NULL;
}

/*
 * The ladder rule: same_group OR (paths >= 3 AND paths::float8 /
 * greatest(buyers, 1) > popularity), in SQL's three-valued logic.
 * (greatest ignores a NULL buyers.)  The builders keep an upgrade only when
 * it is true; _upgrade_on_ladder is this same rule for SQL.
 */
static Tri
upgrade_ladder(bool same_group_null, bool same_group, bool paths_null, int64 paths,
			   bool buyers_null, int64 buyers, bool popularity_null, double popularity)
{
	Tri			group = same_group_null ? TRI_NULL : (same_group ? TRI_TRUE : TRI_FALSE);
	Tri			climbed = paths_null ? TRI_NULL : (paths >= 3 ? TRI_TRUE : TRI_FALSE);
	Tri			above;

	if (paths_null || popularity_null)
		above = TRI_NULL;
	else
	{
		double		share = (double) paths / (double) (buyers_null ? 1 : Max(buyers, 1));

		/* (float8gt puts NaN above everything: nothing is above a NaN popularity) */
		above = share > popularity ? TRI_TRUE : TRI_FALSE;
	}
	return tri_or(group, tri_and(climbed, above));
}

/*
 * _upgrade_on_ladder(same_group boolean, paths bigint, buyers bigint,
 * popularity float8) returns boolean: whether an upgrade stays on a ladder
 * customers climb (upgrade_ladder), NULL where SQL's logic gives NULL.  One
 * rule for the builders and for SQL, not the same rule written twice.
 */
Datum
upsell_upgrade_on_ladder(PG_FUNCTION_ARGS)
{
	Tri			on = upgrade_ladder(PG_ARGISNULL(0), !PG_ARGISNULL(0) && PG_GETARG_BOOL(0),
									PG_ARGISNULL(1), PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1),
									PG_ARGISNULL(2), PG_ARGISNULL(2) ? 0 : PG_GETARG_INT64(2),
									PG_ARGISNULL(3), PG_ARGISNULL(3) ? 0 : PG_GETARG_FLOAT8(3));

	if (on == TRI_NULL)
		PG_RETURN_NULL();
	PG_RETURN_BOOL(on == TRI_TRUE);
}

/*
 * An array column of a list row (int8, bool or float8: passed by value),
 * its elements and their NULL flags; returns how many.  A copy detoasted
 * here is freed, not kept until the build's end.
 */
static int
list_array(Datum d, Oid type, int64 product_id, Datum **elems, bool **nulls)
{
	ArrayType  *a = DatumGetArrayTypeP(d);
	int			n;

	if (ARR_NDIM(a) > 1 || ARR_ELEMTYPE(a) != type)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the upgrade list of product " INT64_FORMAT " has an array of another shape", product_id)));
	if (type == BOOLOID)
		deconstruct_array(a, type, 1, true, TYPALIGN_CHAR, elems, nulls, &n);
	else
		deconstruct_array(a, type, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, elems, nulls, &n);
	if ((Pointer) a != DatumGetPointer(d))
		pfree(a);
	return n;
}

/*
 * A product's list of upgrades (upgrade_list_model, kind 'upgrade': the
 * rows of upgrade_model), the candidates in list order, those on a ladder
 * (_upgrade_on_ladder) and offerable kept.  (Read as arrays, not through
 * the view upgrade_model with the ladder rule in SQL per candidate: 0.37 s
 * for the 61,000 products a page build takes again at 10M lines.)
 */
static void
upgrade_row(Datum *values, bool *nulls, void *arg)
{
	Upgrades   *x = (Upgrades *) arg;
	Catalog    *c = x->catalog;
	Product    *a;
	int64		product_id;
	int			n;
	Datum	   *candidates,
			   *same_group,
			   *paths,
			   *popularity,
			   *score;
	bool	   *candidates_null,
			   *same_group_null,
			   *paths_null,
			   *popularity_null,
			   *score_null;
	bool		buyers_null = nulls[4];
	int64		buyers = buyers_null ? 0 : DatumGetInt64(values[4]);

	CHECK_FOR_INTERRUPTS();
	if (nulls[0] || nulls[1] || nulls[2] || nulls[3] || nulls[5] || nulls[6])
		return;
	product_id = DatumGetInt64(values[0]);
	if (x->n > 0 && x->u[x->n - 1].product_id > product_id)
		elog(ERROR, "upgrades are not in product order");
	a = catalog_product(c, product_id);
	if (a == NULL)
		return;
	n = list_array(values[1], INT8OID, product_id, &candidates, &candidates_null);
	if (list_array(values[2], BOOLOID, product_id, &same_group, &same_group_null) != n ||
		list_array(values[3], INT8OID, product_id, &paths, &paths_null) != n ||
		list_array(values[5], FLOAT8OID, product_id, &popularity, &popularity_null) != n ||
		list_array(values[6], FLOAT8OID, product_id, &score, &score_null) != n)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the upgrade list of product " INT64_FORMAT " has arrays of different lengths", product_id)));
	for (int i = 0; i < n; i++)
	{
		Product    *m;
		Upgrade    *u;

		if (candidates_null[i] ||
			upgrade_ladder(same_group_null[i], DatumGetBool(same_group[i]),
						   paths_null[i], DatumGetInt64(paths[i]), buyers_null, buyers,
						   popularity_null[i], DatumGetFloat8(popularity[i])) != TRI_TRUE)
			continue;
		m = catalog_product(c, DatumGetInt64(candidates[i]));
		if (m == NULL || !m->in_stock || !catalog_within_upgrade_price(c, a, m))
			continue;
		if (score_null[i])
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("upgrade of product " INT64_FORMAT " has a NULL score", a->id)));
		if (x->n == x->cap)
		{
			x->cap *= 2;
			x->u = repalloc_huge(x->u, (Size) x->cap * sizeof(Upgrade));
		}
		u = &x->u[x->n++];
		u->product_id = a->id;
		u->candidate_id = m->id;
		u->score = DatumGetFloat8(score[i]);
		u->paths_null = paths_null[i];
		u->paths = paths_null[i] ? 0 : DatumGetInt64(paths[i]);
		u->buyers_null = buyers_null;
		u->buyers = buyers;
		u->same_group_null = same_group_null[i];
		u->same_group = same_group_null[i] ? false : DatumGetBool(same_group[i]);
	}
	pfree(candidates);
	pfree(candidates_null);
	pfree(same_group);
	pfree(same_group_null);
	pfree(paths);
	pfree(paths_null);
	pfree(popularity);
	pfree(popularity_null);
	pfree(score);
	pfree(score_null);
}

/*
 * Reads the offerable upgrades of the tenant's products (upgrade_row), or
 * of those listed in only.
 */
static void
upgrades_load(Upgrades *x, Catalog *c, const char *only)
{
	static const Oid types[7] = {INT8OID, INT8ARRAYOID, BOOLARRAYOID, INT8ARRAYOID, INT8OID,
	FLOAT8ARRAYOID, FLOAT8ARRAYOID};
	static const char *const names[7] = {"product_id bigint", "candidate_ids bigint[]", "same_group boolean[]",
	"paths bigint[]", "buyers bigint", "popularity float8[]", "score float8[]"};

	x->catalog = c;
	x->n = 0;
	x->cap = 1024;
	x->u = palloc_extended(x->cap * sizeof(Upgrade), MCXT_ALLOC_HUGE);
	ups_stream_query_stable(psprintf("SELECT l.product_id, l.candidate_ids, l.same_group, l.paths, l.buyers, "
									 "l.popularity, l.score FROM %s.upgrade_list_model l "
									 "WHERE l.tenant_id OPERATOR(pg_catalog.=) " INT64_FORMAT
									 " AND l.kind OPERATOR(pg_catalog.=) 'upgrade'%s "
									 "ORDER BY l.product_id", c->nsp, c->tenant_id,
									 products_condition("l.product_id", only)),
							7, types, names, upgrade_row, x);
}

/* ---- the product page ----------------------------------------------------- */

/* the columns of _product_page_lists, an array each but the product's id */
enum
{
	PAGE_PRODUCT,
	PAGE_TYPES,
	PAGE_IDS,
	PAGE_ENDS,
	PAGE_SORTS,
	PAGE_SCORES,
	PAGE_DISCOUNTS,
	PAGE_REASONS,
	PAGE_NCOLS
};

typedef struct PageColumnType
{
	Oid			type;
	int16		len;
	bool		byval;
	char		align;
} PageColumnType;

#define PAGE_INT8 {INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE}
#define PAGE_FLOAT8 {FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE}
#define PAGE_TEXT {TEXTOID, -1, false, TYPALIGN_INT}

static const PageColumnType page_column_types[PAGE_NCOLS] = {
	[PAGE_PRODUCT] = PAGE_INT8,
	[PAGE_TYPES] = PAGE_TEXT,
	[PAGE_IDS] = PAGE_INT8,
	[PAGE_ENDS] = {INT4OID, 4, true, TYPALIGN_INT},
	[PAGE_SORTS] = PAGE_FLOAT8,
	[PAGE_SCORES] = PAGE_FLOAT8,
	[PAGE_DISCOUNTS] = {NUMERICOID, -1, false, TYPALIGN_INT},
	[PAGE_REASONS] = PAGE_TEXT
};

typedef struct PageBuild
{
	Catalog		catalog;
	ReturnSetInfo *rsinfo;
	MemoryContext product_ctx;	/* reset per product */
	Upgrades	upgrades;
	int			next_upgrade;
	/* the complements of the product being ranked */
	int64	   *complement_ids;
	const double *complement_scores;
	int			ncomplements;
	Datum		kind_names[PAGE_NKINDS];
	Datum		no_discount;	/* numeric */
	Datum		complement_reason;	/* text */
} PageBuild;

/*
 * Emits a product's k ranked offers as one row of arrays, an element per
 * offer in rank order: the ids of every offer one after the other
 * (offer_ends: where each offer's ids end), its discount and its reason.
 */
static void
page_emit(PageBuild *b, int64 product_id, PageCandidate *c, int k)
{
	Datum		values[PAGE_NCOLS];
	bool		nulls[PAGE_NCOLS];
	Datum	   *col[PAGE_NCOLS];
	int			nids = 0;
	int64	   *ids;

	for (int i = 0; i < k; i++)
		nids += c[i].nids;
	ids = palloc(Max(nids, 1) * sizeof(int64));
	for (int j = PAGE_TYPES; j < PAGE_NCOLS; j++)
		col[j] = palloc(Max(k, 1) * sizeof(Datum));
	nids = 0;
	for (int i = 0; i < k; i++)
	{
		memcpy(&ids[nids], c[i].ids, c[i].nids * sizeof(int64));
		nids += c[i].nids;
		col[PAGE_TYPES][i] = b->kind_names[c[i].kind];
		col[PAGE_ENDS][i] = Int32GetDatum(nids);
		col[PAGE_SORTS][i] = Float8GetDatum(c[i].sort);
		col[PAGE_SCORES][i] = Float8GetDatum(c[i].score);
		col[PAGE_DISCOUNTS][i] = b->no_discount;
		if (c[i].kind == PAGE_UPGRADE)
		{
			Upgrade    *u = &b->upgrades.u[c[i].ref];

			col[PAGE_REASONS][i] = PointerGetDatum(upsell_upgrade_evidence(u->paths_null, u->paths,
																		   u->buyers_null, u->buyers,
																		   u->same_group_null, u->same_group));
		}
		else
			col[PAGE_REASONS][i] = b->complement_reason;
	}
	memset(nulls, false, sizeof nulls);
	values[PAGE_PRODUCT] = Int64GetDatum(product_id);
	values[PAGE_IDS] = PointerGetDatum(upsell_int8_array(ids, nids));
	for (int j = PAGE_TYPES; j < PAGE_NCOLS; j++)
	{
		const PageColumnType *t = &page_column_types[j];

		if (j != PAGE_IDS)
			values[j] = PointerGetDatum(construct_array(col[j], k, t->type, t->len, t->byval, t->align));
	}
	tuplestore_putvalues(b->rsinfo->setResult, b->rsinfo->setDesc, values, nulls);
}

/* Ranks product_id's offers (its complements read so far) and emits them. */
static void
page_finish(PageBuild *b, int64 product_id)
{
	MemoryContext old = MemoryContextSwitchTo(b->product_ctx);
	int			first_upgrade = b->next_upgrade;
	int			n,
				k;
	PageCandidate *c;

	while (b->next_upgrade < b->upgrades.n && b->upgrades.u[b->next_upgrade].product_id == product_id)
		b->next_upgrade++;
	n = b->ncomplements + (b->next_upgrade - first_upgrade);
	if (n == 0)
	{
		MemoryContextSwitchTo(old);
		return;
	}
	c = palloc(n * sizeof(PageCandidate));
	k = 0;
	for (int i = 0; i < b->ncomplements; i++, k++)
	{
		c[k].kind = PAGE_COMPLEMENT;
		c[k].ids = &b->complement_ids[i];
		c[k].nids = 1;
		c[k].score = b->complement_scores[i];
		c[k].ref = i;
	}
	for (int i = first_upgrade; i < b->next_upgrade; i++, k++)
	{
		c[k].kind = PAGE_UPGRADE;
		c[k].ids = &b->upgrades.u[i].candidate_id;
		c[k].nids = 1;
		c[k].score = b->upgrades.u[i].score;
		c[k].ref = i;
	}
	k = page_rank(c, n, PAGE_OFFERS);
	if (k == PAGE_RANK_ZERO_BEST)
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("the best offer of a kind for product " INT64_FORMAT " has a score of 0: no sort",
						product_id)));
	if (k < 0)
		float_overflow_error();
	page_emit(b, product_id, c, k);
	MemoryContextSwitchTo(old);
	MemoryContextReset(b->product_ctx);
}

/* Emits the products before `before` that have upgrades only. */
static void
page_flush_before(PageBuild *b, int64 before, bool all)
{
	while (b->next_upgrade < b->upgrades.n)
	{
		int64		next = b->upgrades.u[b->next_upgrade].product_id;

		if (!all && next >= before)
			return;
		page_finish(b, next);
	}
}

/*
 * What both builds do first: the tenant argument, the schema of the models,
 * the materialized result, a memory context of their own (returned, and
 * made current) and the pinned search_path (*level, for funnel_build_end).
 */
static MemoryContext
funnel_build_begin(FunctionCallInfo fcinfo, const char *name, int64 *tenant_id,
				   const char **nsp, int *level)
{
	MemoryContext work;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id must not be NULL")));
	*tenant_id = PG_GETARG_INT64(0);
	*nsp = schema_of(fcinfo);
	InitMaterializedSRF(fcinfo, 0);
	work = AllocSetContextCreate(CurrentMemoryContext, "upsell funnel build", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSetIdentifier(work, name);
	MemoryContextSwitchTo(work);
	*level = upsell_pin_search_path();
	return work;
}

static void
funnel_build_end(MemoryContext callerctx, MemoryContext work, int level)
{
	upsell_unpin_search_path(level);
	MemoryContextSwitchTo(callerctx);
	MemoryContextDelete(work);
}

/*
 * _product_page_lists(tenant_id bigint [, products bigint[]]) RETURNS TABLE
 *	 (product_id bigint, offer_types text[], product_ids bigint[],
 *	 offer_ends int[], sorts float8[], scores float8[], discounts numeric[],
 *	 reasons text[])
 *
 * Per product with any (of those listed, when they are), its 12 best
 * complements and upgrades for the product page (the rule is in
 * 90_funnel.sql) as one row of arrays in rank order (page_emit), with their
 * discounts and reasons: the rows of product_page_list_model.  In product
 * order.  The bundles join them when the page is served (serving_page.c).
 */
Datum
upsell_product_page_lists(PG_FUNCTION_ARGS)
{
	MemoryContext callerctx = CurrentMemoryContext;
	MemoryContext work;
	PageBuild	b;
	const char *nsp;
	int64		tenant_id;
	int			level;
	Complements x;
	Catalog    *c;
	int			ids_cap;
	char	   *only;

	work = funnel_build_begin(fcinfo, "upsell product page build", &tenant_id, &nsp, &level);
	only = products_arg(fcinfo);

	memset(&b, 0, sizeof b);
	b.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	b.product_ctx = AllocSetContextCreate(work, "upsell product page offers", ALLOCSET_DEFAULT_SIZES);
	b.kind_names[PAGE_COMPLEMENT] = CStringGetTextDatum("complement");
	b.kind_names[PAGE_UPGRADE] = CStringGetTextDatum("upgrade");
	b.no_discount = DirectFunctionCall3(numeric_in, CStringGetDatum("0"),
										ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	b.complement_reason = CStringGetTextDatum("frequently bought together");
	catalog_load(&b.catalog, nsp, tenant_id);

	upgrades_load(&b.upgrades, &b.catalog, only);

	c = &b.catalog;
	complements_load(&x, c, only);
	ids_cap = 64;
	b.complement_ids = palloc(ids_cap * sizeof(int64));
	for (int r = 0; r < c->nproducts; r++)
	{
		Product    *a = &c->products[c->order[r]];
		int64		first = x.start[r];
		int			n = (int) (x.start[r + 1] - first);

		CHECK_FOR_INTERRUPTS();
		/* the products before it with upgrades only */
		b.ncomplements = 0;
		page_flush_before(&b, a->id, false);
		if (n > ids_cap)
		{
			ids_cap = n;
			b.complement_ids = repalloc(b.complement_ids, ids_cap * sizeof(int64));
		}
		for (int i = 0; i < n; i++)
			b.complement_ids[i] = c->products[x.by_rank_others[first + i]].id;
		b.complement_scores = &x.by_rank_scores[first];
		b.ncomplements = n;
		page_finish(&b, a->id);
	}
	b.ncomplements = 0;
	page_flush_before(&b, 0, true);

	funnel_build_end(callerctx, work, level);
	return (Datum) 0;
}

/* ---- the cart ------------------------------------------------------------- */

typedef struct CartComplement
{
	int64		other_id;
	double		score;
	int32		category;
} CartComplement;

static int
cmp_cart_complement(const void *x, const void *y)
{
	const CartComplement *a = x;
	const CartComplement *b = y;

	return a->other_id < b->other_id ? -1 : (a->other_id > b->other_id ? 1 : 0);
}

/* ln(1 - least(score, 0.999999)) as float8 arithmetic does it */
static double
cart_log_miss(double score)
{
	double		x = float8_mi(1.0, float8_lt(score, 0.999999) ? score : 0.999999);
	double		r;

	if (x == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_ARGUMENT_FOR_LOG),
				 errmsg("cannot take logarithm of zero")));
	if (x < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_ARGUMENT_FOR_LOG),
				 errmsg("cannot take logarithm of a negative number")));
	r = log(x);
	if (unlikely(isinf(r)) && !isinf(x))
		float_overflow_error();
	if (unlikely(r == 0.0) && x != 1.0)
		float_underflow_error();
	return r;
}

/*
 * Whether upgrade x goes before y in a cart line's choice: within the
 * variant group first (an unknown one before both), then the higher score
 * (as float8 orders: NaN highest), then the lower id.
 */
static bool
cart_upgrade_before(const Upgrade *x, const Upgrade *y)
{
	int			gx = x->same_group_null ? 2 : x->same_group;
	int			gy = y->same_group_null ? 2 : y->same_group;
	int			by_score;

	if (gx != gy)
		return gx > gy;
	by_score = float8_cmp_internal(x->score, y->score);
	if (by_score != 0)
		return by_score > 0;
	return x->candidate_id < y->candidate_id;
}

/*
 * Why a cart line's upgrade is offered: "instead of <title>: <evidence>;
 * +<price difference> (<percent> more)", the percent rounded as numeric
 * rounds, the product's id where it has no title.
 */
static Datum
cart_upgrade_reason(Catalog *c, const Product *a, const Upgrade *u)
{
	ProductPrice *pa = &c->prices[a - c->products];
	ProductPrice *pm = &c->prices[catalog_product(c, u->candidate_id) - c->products];
	Datum		extra = DirectFunctionCall2(numeric_sub, pm->price, pa->price);
	Datum		percent;
	text	   *evidence = upsell_upgrade_evidence(u->paths_null, u->paths, u->buyers_null, u->buyers,
												   u->same_group_null, u->same_group);

	/* round(100 * extra / a.price) */
	percent = DirectFunctionCall2(numeric_mul, NumericGetDatum(int64_to_numeric(100)), extra);
	percent = DirectFunctionCall2(numeric_div, percent, pa->price);
	percent = DirectFunctionCall2(numeric_round, percent, Int32GetDatum(0));
	return CStringGetTextDatum(psprintf("instead of %s: %s; +%s (%s%% more)",
										pa->title ? pa->title : psprintf(INT64_FORMAT, a->id),
										text_to_cstring(evidence),
										DatumGetCString(DirectFunctionCall1(numeric_out, extra)),
										DatumGetCString(DirectFunctionCall1(numeric_out, percent))));
}

/*
 * _cart_lines(tenant_id bigint [, products bigint[]]) RETURNS TABLE
 *	 (product_id bigint, ids bigint[], log_miss float8[], categories text[],
 *	 upgrade_id bigint, upgrade_score float8, upgrade_reason text)
 *
 * Per product of product_model with any (or of those listed): its
 * complements of pair_list_model in stock that do not substitute it, by id,
 * with ln(1 - pair score) and their categories, and its best upgrade (the
 * page's rule, within the variant group first) with its reason: what
 * cart_model stores of them.  In product order.  The catalog is read whole
 * (the facts of the complements and upgrades); the lists only for the
 * products asked for.
 */
Datum
upsell_cart_lines(PG_FUNCTION_ARGS)
{
	MemoryContext callerctx = CurrentMemoryContext;
	MemoryContext work;
	MemoryContext product_ctx;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Catalog		catalog;
	Catalog    *c = &catalog;
	Complements x;
	Upgrades	upgrades;
	int			next_upgrade = 0;
	const char *nsp;
	int64		tenant_id;
	int			level;
	CartComplement *buf;
	int			buf_cap = 64;
	Datum	   *category_texts;
	char	   *only;

	work = funnel_build_begin(fcinfo, "upsell cart build", &tenant_id, &nsp, &level);
	product_ctx = AllocSetContextCreate(work, "upsell cart line", ALLOCSET_DEFAULT_SIZES);
	only = products_arg(fcinfo);

	catalog_load(c, nsp, tenant_id);
	complements_load(&x, c, only);
	upgrades_load(&upgrades, c, only);
	/* each category's text once, not once per complement */
	category_texts = palloc(Max(c->ncategories, 1) * sizeof(Datum));
	for (int i = 0; i < c->ncategories; i++)
		category_texts[i] = CStringGetTextDatum(c->categories[i]);
	buf = palloc(buf_cap * sizeof(CartComplement));
	for (int r = 0; r < c->nproducts; r++)
	{
		Product    *a = &c->products[c->order[r]];
		int64		first = x.start[r];
		int			n = (int) (x.start[r + 1] - first);
		Upgrade    *best = NULL;
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, true, true, true};
		Datum	   *ids,
				   *miss,
				   *cats;
		bool	   *cat_nulls;
		int			dims[1];
		int			lbs[1] = {1};

		CHECK_FOR_INTERRUPTS();
		/* its upgrades (every one is of a product of the catalog) */
		while (next_upgrade < upgrades.n && upgrades.u[next_upgrade].product_id < a->id)
			next_upgrade++;
		for (; next_upgrade < upgrades.n && upgrades.u[next_upgrade].product_id == a->id; next_upgrade++)
			if (best == NULL || cart_upgrade_before(&upgrades.u[next_upgrade], best))
				best = &upgrades.u[next_upgrade];
		if (n == 0 && best == NULL)
			continue;
		if (n > buf_cap)
		{
			buf_cap = n;
			buf = repalloc(buf, buf_cap * sizeof(CartComplement));
		}
		for (int i = 0; i < n; i++)
		{
			Product    *o = &c->products[x.by_rank_others[first + i]];

			buf[i].other_id = o->id;
			buf[i].score = x.by_rank_scores[first + i];
			buf[i].category = o->category;
		}
		qsort(buf, n, sizeof(CartComplement), cmp_cart_complement);
		MemoryContextSwitchTo(product_ctx);
		ids = palloc(Max(n, 1) * sizeof(Datum));
		miss = palloc(Max(n, 1) * sizeof(Datum));
		cats = palloc(Max(n, 1) * sizeof(Datum));
		cat_nulls = palloc(Max(n, 1) * sizeof(bool));
		for (int i = 0; i < n; i++)
		{
			ids[i] = Int64GetDatum(buf[i].other_id);
			miss[i] = Float8GetDatum(cart_log_miss(buf[i].score));
			cat_nulls[i] = buf[i].category < 0;
			cats[i] = cat_nulls[i] ? (Datum) 0 : category_texts[buf[i].category];
		}
		dims[0] = n;
		values[0] = Int64GetDatum(a->id);
		values[1] = PointerGetDatum(construct_array(ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[2] = PointerGetDatum(construct_array(miss, n, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[3] = PointerGetDatum(construct_md_array(cats, cat_nulls, 1, dims, lbs, TEXTOID, -1, false,
													   TYPALIGN_INT));
		if (best != NULL)
		{
			values[4] = Int64GetDatum(best->candidate_id);
			values[5] = Float8GetDatum(best->score);
			values[6] = cart_upgrade_reason(c, a, best);
			nulls[4] = nulls[5] = nulls[6] = false;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		MemoryContextSwitchTo(work);
		MemoryContextReset(product_ctx);
	}

	funnel_build_end(callerctx, work, level);
	return (Datum) 0;
}
