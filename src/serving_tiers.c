/*
 * serving_tiers.c
 *		Volume tiers priced per cart line: the unit price a line pays at its
 *		quantity and the next tier that lowers it (upsell._tier_offers, and
 *		the cart stage directly).
 *
 * The tiers come from the rules cache (serving_rules.c reads every tier of
 * the tenant with its rules, and every change of volume_tiers draws a new
 * cache key), the products' list price, category and stock from
 * product_model in one query per call.  Until 1.12 this was a PL/pgSQL
 * query that hashed every tier of the tenant and was planned per call:
 * 1 ms of a 1.2 ms tiered cart.
 *
 * The arithmetic is SQL's, with the same numeric functions in the same
 * order, so that a unit price, a saving and a reason read the same as they
 * did (sql/40_volume_tiers compares them with the PL/pgSQL definition).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/numeric.h"

#include "serving.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_tier_offers);

/* A product as product_model lists it, with a price above 0. */
typedef struct TierProduct
{
	int64		product_id;
	Numeric		price;
	char	   *category;		/* NULL: none */
	bool		in_stock;
} TierProduct;

static int
tier_product_cmp(const void *a, const void *b)
{
	int64		x = ((const TierProduct *) a)->product_id;
	int64		y = ((const TierProduct *) b)->product_id;

	return x < y ? -1 : x > y;
}

static int
numeric_compare(Numeric a, Numeric b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(a), NumericGetDatum(b)));
}

static Numeric
numeric_op(PGFunction op, Numeric a, Numeric b)
{
	return DatumGetNumeric(DirectFunctionCall2(op, NumericGetDatum(a), NumericGetDatum(b)));
}

static Numeric
numeric_rounded(Numeric a, int scale)
{
	return DatumGetNumeric(DirectFunctionCall2(numeric_round, NumericGetDatum(a), Int32GetDatum(scale)));
}

static char *
numeric_text(Numeric a)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(a)));
}

/*
 * The products of ids[0 .. n) that product_model lists with a price above
 * 0, by product id (*nfound of them).
 */
static TierProduct *
read_tier_products(int64 tenant_id, const int64 *ids, int n, int *nfound)
{
	int64	   *sorted = palloc(Max(n, 1) * sizeof(int64));
	Datum	   *elems = palloc(Max(n, 1) * sizeof(Datum));
	Datum		args[2];
	TierProduct *products;
	int			nids;
	uint64		rows;

	memcpy(sorted, ids, n * sizeof(int64));
	nids = serving_sort_unique(sorted, n);
	for (int i = 0; i < nids; i++)
		elems[i] = Int64GetDatum(sorted[i]);
	args[0] = Int64GetDatum(tenant_id);
	args[1] = PointerGetDatum(construct_array(elems, nids, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	rows = serving_run(serving.tier_products, args, NULL);
	products = palloc(Max(rows, 1) * sizeof(TierProduct));
	for (uint64 row = 0; row < rows; row++)
	{
		TierProduct *p = &products[row];
		bool		isnull;

		p->product_id = DatumGetInt64(serving_col(row, 1, &isnull));
		p->price = DatumGetNumeric(datumCopy(serving_col(row, 2, &isnull), false, -1));
		p->category = serving_col_text(row, 3);
		p->in_stock = DatumGetBool(serving_col(row, 4, &isnull));
	}
	qsort(products, rows, sizeof(TierProduct), tier_product_cmp);
	*nfound = (int) rows;
	return products;
}

/*
 * The tiers that price a product: its own, else its category's (product
 * tiers replace category tiers), as a range of one of the rules' sorted
 * arrays.  Returns how many; *first the first.
 */
static int
tiers_of(const TenantRules *r, const TierProduct *p, const VolumeTier **first)
{
	int			lo = 0,
				hi = r->nproduct_tiers,
				n = 0;

	/* the first tier of the product, by halves */
	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (r->product_tiers[mid].product_id < p->product_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo + n < r->nproduct_tiers && r->product_tiers[lo + n].product_id == p->product_id)
		n++;
	if (n > 0)
	{
		*first = &r->product_tiers[lo];
		return n;
	}
	if (p->category == NULL)
		return 0;
	lo = 0;
	hi = r->ncategory_tiers;
	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (strcmp(r->category_tiers[mid].category, p->category) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	while (lo + n < r->ncategory_tiers && strcmp(r->category_tiers[lo + n].category, p->category) == 0)
		n++;
	*first = &r->category_tiers[lo];
	return n;
}

/*
 * A tier's unit price for a product of that list price: its fixed price or
 * percent off rounded to the cent, never above the list price (a fixed
 * price the list price has since fallen below would make the unit dearer),
 * as least(coalesce(unit_price, round(price * (1 - percent_off / 100), 2)),
 * price): on a tie the tier's own value, as LEAST keeps the first.
 */
static Numeric
tier_unit_price(const VolumeTier *t, Numeric price)
{
	Numeric		v = t->unit_price;

	if (v == NULL)
		v = numeric_rounded(numeric_op(numeric_mul, price,
									   numeric_op(numeric_sub, int64_to_numeric(1),
												  numeric_op(numeric_div, t->percent_off, int64_to_numeric(100)))),
							2);
	return numeric_compare(price, v) < 0 ? price : v;
}

/*
 * The quote of each of n lines (products ids[i], units[i] >= 1 of each)
 * into a new array: known (product_model lists it with a price), tiered,
 * the unit price at its quantity, and the next tier that lowers it if one
 * does and the product may be offered more of (in stock, not excluded).
 * Allocated in the current memory context.
 */
TierQuote *
serving_quote_tiers(const TenantRules *r, int64 tenant_id, const int64 *ids, const int32 *units, int n)
{
	TierQuote  *out = palloc0(Max(n, 1) * sizeof(TierQuote));
	int			nproducts;
	TierProduct *products = read_tier_products(tenant_id, ids, n, &nproducts);

	for (int i = 0; i < n; i++)
	{
		TierQuote  *q = &out[i];
		TierProduct key = {.product_id = ids[i]};
		const TierProduct *p = nproducts > 0
			? bsearch(&key, products, nproducts, sizeof(TierProduct), tier_product_cmp) : NULL;
		const VolumeTier *tiers = NULL;
		int			ntiers;
		const char *blocked = NULL;
		int			cur = -1,
					next = -1;
		Numeric    *prices;

		if (p == NULL)
			continue;
		q->known = true;
		q->price = p->price;
		ntiers = tiers_of(r, p, &tiers);
		q->tiered = ntiers > 0;
		prices = palloc(Max(ntiers, 1) * sizeof(Numeric));
		for (int k = 0; k < ntiers; k++)
			prices[k] = tier_unit_price(&tiers[k], p->price);

		/* the tier of the line's quantity: the largest reached, the cheaper on a tie */
		for (int k = 0; k < ntiers; k++)
			if (tiers[k].min_quantity <= units[i] &&
				(cur < 0 || tiers[k].min_quantity > tiers[cur].min_quantity ||
				 (tiers[k].min_quantity == tiers[cur].min_quantity &&
				  numeric_compare(prices[k], prices[cur]) < 0)))
				cur = k;
		q->unit_price = cur >= 0 ? prices[cur] : p->price;

		/* more of a product one cannot ship, or may not offer, is no offer */
		if (!p->in_stock)
			blocked = "out of stock";
		else if (serving_excluded(r, p->product_id, NULL, 0))
			blocked = "excluded by the merchant";

		/* the next tier that lowers the unit price: the smallest, the cheaper on a tie */
		for (int k = 0; k < ntiers && blocked == NULL; k++)
			if (tiers[k].min_quantity > units[i] && numeric_compare(prices[k], q->unit_price) < 0 &&
				(next < 0 || tiers[k].min_quantity < tiers[next].min_quantity ||
				 (tiers[k].min_quantity == tiers[next].min_quantity &&
				  numeric_compare(prices[k], prices[next]) < 0)))
				next = k;
		if (next < 0)
		{
			q->reason = pstrdup(blocked ? blocked : "no further volume tier");
			continue;
		}
		q->has_next = true;
		q->next_quantity = tiers[next].min_quantity;
		q->new_unit_price = prices[next];
		q->total_saving = numeric_op(numeric_mul, int64_to_numeric(q->next_quantity),
									 numeric_op(numeric_sub, q->unit_price, q->new_unit_price));
		q->reason = psprintf("add %d more to pay %s instead of %s each: %s saved on %d units",
							 q->next_quantity - units[i],
							 numeric_text(numeric_rounded(q->new_unit_price, 2)),
							 numeric_text(numeric_rounded(q->unit_price, 2)),
							 numeric_text(numeric_rounded(q->total_saving, 2)),
							 q->next_quantity);
	}
	return out;
}

/*
 * upsell._tier_offers(t bigint, product_ids bigint[], quantities int[],
 *					   tiered_only boolean DEFAULT false)
 *	RETURNS TABLE (n bigint, price numeric, tiered boolean, unit_price numeric,
 *				   next_quantity int, units_to_add int, new_unit_price numeric,
 *				   total_saving numeric, reason text)
 *
 * A row per line (n its position from 1) of a product product_model lists
 * with a price; with tiered_only, of a product with tiers.  The callers
 * (quantity_offer, the cart value of threshold_gap and gap_fillers) check
 * the quantities; a NULL or a count that differs is an error here.
 */
Datum
upsell_tier_offers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		tiered_only = !PG_ARGISNULL(3) && PG_GETARG_BOOL(3);
	int64		tenant_id;
	Datum	   *id_d,
			   *unit_d;
	bool	   *id_nulls,
			   *unit_nulls;
	int64	   *ids;
	int32	   *units;
	int			n,
				nunits;
	TierQuote  *quotes;

	serving_begin_request(fcinfo);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
	{
		serving_end_request();
		PG_RETURN_NULL();
	}
	tenant_id = PG_GETARG_INT64(0);
	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("quantities must not be NULL")));
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &id_d, &id_nulls, &n);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), INT4OID, 4, true, TYPALIGN_INT,
					  &unit_d, &unit_nulls, &nunits);
	if (nunits != n)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%d product ids but %d quantities", n, nunits)));
	/* (a NULL id is a line of no product: no row, as no product_model row) */
	ids = palloc(Max(n, 1) * sizeof(int64));
	units = palloc(Max(n, 1) * sizeof(int32));
	for (int i = 0; i < n; i++)
	{
		ids[i] = id_nulls[i] ? 0 : DatumGetInt64(id_d[i]);
		units[i] = unit_nulls[i] ? 0 : DatumGetInt32(unit_d[i]);
		if (units[i] < 1)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the quantity of line %d must be at least 1, not %s", i + 1,
							unit_nulls[i] ? "NULL" : psprintf("%d", units[i]))));
	}

	quotes = serving_quote_tiers(serving_tenant_rules(tenant_id), tenant_id, ids, units, n);
	for (int i = 0; i < n; i++)
	{
		TierQuote  *q = &quotes[i];
		Datum		values[9];
		bool		nulls[9] = {false};

		if (id_nulls[i] || !q->known || (tiered_only && !q->tiered))
			continue;
		values[0] = Int64GetDatum(i + 1);
		values[1] = NumericGetDatum(q->price);
		values[2] = BoolGetDatum(q->tiered);
		values[3] = NumericGetDatum(q->unit_price);
		if (q->has_next)
		{
			values[4] = Int32GetDatum(q->next_quantity);
			values[5] = Int32GetDatum(q->next_quantity - units[i]);
			values[6] = NumericGetDatum(q->new_unit_price);
			values[7] = NumericGetDatum(q->total_saving);
		}
		else
			nulls[4] = nulls[5] = nulls[6] = nulls[7] = true;
		values[8] = CStringGetTextDatum(q->reason);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	serving_end_request();
	PG_RETURN_NULL();
}
