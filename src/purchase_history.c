/*
 * purchase_history.c
 *		upsell._purchase_history(query): the purchase history of every
 *		customer and the repeat statistics of every product in one pass over
 *		the order lines (src/core/history.c does the arithmetic).
 *
 * The query returns (tenant_id bigint, customer_id bigint, product_id
 * bigint, ordered_at timestamptz, quantity numeric, spend numeric) grouped
 * by tenant and customer (ORDER BY tenant_id, customer_id).  It runs to
 * completion (query_stream.c), so PostgreSQL may scan and sort it with
 * parallel workers, and only one customer's lines are held at a time.  The result has one row per customer (product_id NULL:
 * arrays over the customer's products, sorted by product id) and, after
 * each tenant's customers, one row per product (customer_id NULL).
 *
 * upsell._purchase_history_fold(histories, new_lines): the same rows for
 * the customers with new lines, from their stored histories and the new
 * lines alone (an incremental refresh).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "history.h"
#include "query_stream.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_purchase_history);
PG_FUNCTION_INFO_V1(upsell_purchase_history_fold);
PG_FUNCTION_INFO_V1(upsell_gaps_update);
PG_FUNCTION_INFO_V1(upsell_gaps_median);
PG_FUNCTION_INFO_V1(upsell_consumable_by_data);

#define PH_NCOLS_IN 6
#define PH_NCOLS_OUT 19
#define PH_BETWEEN_AT 17
#define PH_TAKEN_OUT 18

/* A tenant's product table, emitted and emptied once the tenant is done. */
typedef struct PhTable
{
	MemoryContext ctx;			/* the table's memory; reset per tenant */
	PhProducts	products;
	bool		open;
	int64		tenant;
} PhTable;

typedef struct PhReceiver
{
	Tuplestorestate *out;
	TupleDesc	outdesc;
	MemoryContext customer_ctx; /* one customer's lines; reset per customer */
	PhTable		table;			/* the customers' statistics per product */
	bool		have_customer;
	int64		tenant;
	int64		customer;
	PhLine	   *lines;
	Datum	   *quantity;
	Datum	   *spend;			/* (Datum) 0: NULL */
	int			n;
	int			cap;
	bool		whole_days;		/* the times are days of the shop (iv_stats) */
} PhReceiver;

static Datum
numeric_plus(Datum a, Datum b)
{
	return DirectFunctionCall2(numeric_add, a, b);
}

/* Emits the row of the customer whose lines are buffered and resets them. */
static void
flush_customer(PhReceiver *r)
{
	MemoryContext old = MemoryContextSwitchTo(r->customer_ctx);
	int			nprod = 0;
	int64	   *ids;
	Datum	   *purchases,
			   *first,
			   *last,
			   *median,
			   *cv,
			   *qty,
			   *spend;
	bool	   *median_null,
			   *cv_null,
			   *spend_null;
	Datum	   *between;
	int			nbetween = 0;
	IvTimes		times;
	Datum		values[PH_NCOLS_OUT];
	bool		nulls[PH_NCOLS_OUT];
	int			dims[1];
	int			lbs[1] = {1};

	if (r->n == 0)
	{
		MemoryContextSwitchTo(old);
		return;
	}
	ph_sort_lines(r->lines, r->n);
	ids = palloc(sizeof(int64) * r->n);
	purchases = palloc(sizeof(Datum) * r->n);
	first = palloc(sizeof(Datum) * r->n);
	last = palloc(sizeof(Datum) * r->n);
	median = palloc(sizeof(Datum) * r->n);
	cv = palloc(sizeof(Datum) * r->n);
	qty = palloc(sizeof(Datum) * r->n);
	spend = palloc(sizeof(Datum) * r->n);
	median_null = palloc(sizeof(bool) * r->n);
	cv_null = palloc(sizeof(bool) * r->n);
	spend_null = palloc(sizeof(bool) * r->n);
	between = palloc(sizeof(Datum) * r->n);
	iv_times_init(&times);

	for (size_t i = 0; i < (size_t) r->n;)
	{
		size_t		len = ph_run_length(r->lines, r->n, i);
		IvStats		st;
		Datum		q = r->quantity[r->lines[i].idx];
		Datum		s = r->spend[r->lines[i].idx];

		/*
		 * The spend is known only when every line has a price: the priced
		 * lines' sum over all the purchases (until 1.8) made the average
		 * spend per purchase of two priced lines in four half of it.
		 */
		times.n = 0;
		for (size_t j = i; j < i + len; j++)
		{
			iv_times_add(&times, r->lines[j].t);
			if (j > i)
			{
				Datum		sj = r->spend[r->lines[j].idx];

				q = numeric_plus(q, r->quantity[r->lines[j].idx]);
				s = s == (Datum) 0 || sj == (Datum) 0 ? (Datum) 0 : numeric_plus(s, sj);
			}
		}
		iv_stats(&times, (double) USECS_PER_DAY, r->whole_days, &st);
		/* (iv_stats left the distinct instants in order) */
		for (size_t j = 1; j + 1 < times.n; j++)
			between[nbetween++] = TimestampTzGetDatum((TimestampTz) times.t[j]);

		ids[nprod] = r->lines[i].product;
		purchases[nprod] = Int32GetDatum((int32) Min(st.purchases, PG_INT32_MAX));
		first[nprod] = TimestampTzGetDatum((TimestampTz) st.first);
		last[nprod] = TimestampTzGetDatum((TimestampTz) st.last);
		median[nprod] = Float8GetDatum(st.median_gap);
		median_null[nprod] = st.gaps < 1;
		cv[nprod] = Float8GetDatum(st.cv);
		cv_null[nprod] = !st.has_cv;
		qty[nprod] = q;
		spend[nprod] = s;
		spend_null[nprod] = s == (Datum) 0;
		nprod++;

		MemoryContextSwitchTo(r->table.ctx);
		ph_products_add(&r->table.products, r->lines[i].product, &st);
		MemoryContextSwitchTo(r->customer_ctx);
		i += len;
	}

	dims[0] = nprod;
	memset(nulls, true, sizeof nulls);
	values[0] = Int64GetDatum(r->tenant);
	nulls[0] = false;
	values[1] = Int64GetDatum(r->customer);
	nulls[1] = false;
	values[2] = PointerGetDatum(upsell_int8_array(ids, nprod));
	values[3] = PointerGetDatum(construct_array(purchases, nprod, INT4OID, 4, true, TYPALIGN_INT));
	values[4] = PointerGetDatum(construct_array(first, nprod, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[5] = PointerGetDatum(construct_array(last, nprod, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[6] = PointerGetDatum(construct_md_array(median, median_null, 1, dims, lbs,
												   FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[7] = PointerGetDatum(construct_md_array(cv, cv_null, 1, dims, lbs,
												   FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[8] = PointerGetDatum(construct_array(qty, nprod, NUMERICOID, -1, false, TYPALIGN_INT));
	values[9] = PointerGetDatum(construct_md_array(spend, spend_null, 1, dims, lbs,
												   NUMERICOID, -1, false, TYPALIGN_INT));
	values[PH_BETWEEN_AT] = PointerGetDatum(construct_array(between, nbetween, TIMESTAMPTZOID, 8,
															FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[PH_TAKEN_OUT] = BoolGetDatum(false);
	for (int c = 2; c <= 9; c++)
		nulls[c] = false;
	nulls[PH_BETWEEN_AT] = false;
	nulls[PH_TAKEN_OUT] = false;
	tuplestore_putvalues(r->out, r->outdesc, values, nulls);

	MemoryContextSwitchTo(old);
	MemoryContextReset(r->customer_ctx);
	r->lines = NULL;
	r->quantity = r->spend = NULL;
	r->n = r->cap = 0;
}

static ArrayType *
float8_array(const double *v, size_t n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (size_t i = 0; i < n; i++)
		d[i] = Float8GetDatum(v[i]);
	return construct_array(d, (int) n, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

static double *
float8_elems(ArrayType *a, size_t *n)
{
	Datum	   *d;
	bool	   *nulls;
	int			m;
	double	   *v;

	deconstruct_array(a, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &d, &nulls, &m);
	v = palloc(sizeof(double) * Max(m, 1));
	*n = 0;
	for (int i = 0; i < m; i++)
		if (!nulls[i])
			v[(*n)++] = DatumGetFloat8(d[i]);
	return v;
}

/*
 * Emits a tenant's product rows from a product table (consumed): the pass's,
 * or with taken_out what stored histories contributed (their population
 * interval and consumable rule are not the product's: NULL).
 */
static void
put_products(PhReceiver *r, int64 tenant, PhProducts *products, bool taken_out)
{
	PhProductStats *ps;
	size_t		n;

	ps = ph_products_finish(products, &n);
	for (size_t i = 0; i < n; i++)
	{
		Datum		values[PH_NCOLS_OUT];
		bool		nulls[PH_NCOLS_OUT];

		memset(nulls, true, sizeof nulls);
		values[0] = Int64GetDatum(tenant);
		nulls[0] = false;
		values[10] = Int64GetDatum(ps[i].product);
		values[11] = Int64GetDatum(ps[i].customers);
		values[12] = Int64GetDatum(ps[i].repeaters);
		values[13] = Int64GetDatum(ps[i].regulars);
		values[14] = Float8GetDatum(ps[i].population_days);
		values[15] = BoolGetDatum(ps[i].consumable);
		values[16] = PointerGetDatum(float8_array(ps[i].gaps, ps[i].ngaps));
		values[PH_TAKEN_OUT] = BoolGetDatum(taken_out);
		for (int c = 10; c <= 16; c++)
			nulls[c] = false;
		nulls[14] = taken_out || !ps[i].has_population;
		nulls[15] = taken_out;
		nulls[PH_TAKEN_OUT] = false;
		tuplestore_putvalues(r->out, r->outdesc, values, nulls);
		if ((i & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
	}
}

/* Emits the table's rows (taken_out: see put_products) and empties it. */
static void
table_flush(PhReceiver *r, PhTable *t, bool taken_out)
{
	MemoryContext old;

	if (!t->open)
		return;
	old = MemoryContextSwitchTo(t->ctx);
	put_products(r, t->tenant, &t->products, taken_out);
	MemoryContextSwitchTo(old);
	MemoryContextReset(t->ctx);
	t->open = false;
}

/* The table for a tenant's products, the rows of the tenant before emitted first. */
static void
table_open(PhReceiver *r, PhTable *t, int64 tenant, bool taken_out)
{
	MemoryContext old;

	if (t->open && t->tenant == tenant)
		return;
	table_flush(r, t, taken_out);
	old = MemoryContextSwitchTo(t->ctx);
	ph_products_init(&t->products);
	MemoryContextSwitchTo(old);
	t->open = true;
	t->tenant = tenant;
}

static void
ph_row(Datum *values, bool *isnull, void *arg)
{
	PhReceiver *r = (PhReceiver *) arg;
	int64		tenant,
				customer;
	MemoryContext old;

	/* the query filters these; a NULL here is skipped, not counted twice */
	if (isnull[0] || isnull[1] || isnull[2] || isnull[3] || isnull[4])
		return;
	tenant = DatumGetInt64(values[0]);
	customer = DatumGetInt64(values[1]);
	if (TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(values[3])))
		return;

	if (!r->have_customer || tenant != r->tenant || customer != r->customer)
	{
		if (r->have_customer)
		{
			if (tenant < r->tenant || (tenant == r->tenant && customer < r->customer))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("the purchase history query must be ordered by tenant_id, customer_id")));
			flush_customer(r);
		}
		table_open(r, &r->table, tenant, false);
		r->have_customer = true;
		r->tenant = tenant;
		r->customer = customer;
		CHECK_FOR_INTERRUPTS();
	}

	old = MemoryContextSwitchTo(r->customer_ctx);
	if (r->n == r->cap)
	{
		r->cap = r->cap ? 2 * r->cap : 16;
		if (r->lines == NULL)
		{
			r->lines = palloc(sizeof(PhLine) * r->cap);
			r->quantity = palloc(sizeof(Datum) * r->cap);
			r->spend = palloc(sizeof(Datum) * r->cap);
		}
		else
		{
			r->lines = repalloc_huge(r->lines, sizeof(PhLine) * r->cap);
			r->quantity = repalloc_huge(r->quantity, sizeof(Datum) * r->cap);
			r->spend = repalloc_huge(r->spend, sizeof(Datum) * r->cap);
		}
	}
	r->lines[r->n].product = DatumGetInt64(values[2]);
	r->lines[r->n].t = (int64) DatumGetTimestampTz(values[3]);
	r->lines[r->n].idx = r->n;
	r->quantity[r->n] = datumCopy(values[4], false, -1);
	r->spend[r->n] = isnull[5] ? (Datum) 0 : datumCopy(values[5], false, -1);
	r->n++;
	MemoryContextSwitchTo(old);
}

static const Oid line_types[PH_NCOLS_IN] = {INT8OID, INT8OID, INT8OID, TIMESTAMPTZOID, NUMERICOID, NUMERICOID};
static const char *const line_names[PH_NCOLS_IN] = {"tenant_id bigint", "customer_id bigint",
"product_id bigint", "ordered_at timestamptz", "quantity numeric", "spend numeric"};

/* The pass's receiver, writing the function's result. */
static void
receiver_begin(FunctionCallInfo fcinfo, bool whole_days, PhReceiver *r)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	memset(r, 0, sizeof *r);
	r->whole_days = whole_days;
	r->out = rsinfo->setResult;
	r->outdesc = rsinfo->setDesc;
	r->customer_ctx = AllocSetContextCreate(CurrentMemoryContext, "upsell purchase history customer",
											ALLOCSET_DEFAULT_SIZES);
	r->table.ctx = AllocSetContextCreate(CurrentMemoryContext, "upsell purchase history products",
										 ALLOCSET_DEFAULT_SIZES);
}

/* The last customer's and tenant's rows. */
static void
receiver_end(PhReceiver *r)
{
	flush_customer(r);
	table_flush(r, &r->table, false);
	MemoryContextDelete(r->customer_ctx);
	MemoryContextDelete(r->table.ctx);
}

/*
 * _purchase_history(query text, whole_days boolean) RETURNS SETOF
 * _history_pass: (tenant_id, customer_id, product_ids, purchases, first_at,
 * last_at, median_gap_days, cv, quantity, spend, product_id, customers,
 * repeat_customers, regular_customers, population_interval_days,
 * repeats_consumable, repeat_gaps, between_at, taken_out)
 */
Datum
upsell_purchase_history(PG_FUNCTION_ARGS)
{
	char	   *query = text_to_cstring(PG_GETARG_TEXT_PP(0));
	PhReceiver	r;

	receiver_begin(fcinfo, PG_GETARG_BOOL(1), &r);
	ups_stream_query(query, PH_NCOLS_IN, line_types, line_names, ph_row, &r);
	receiver_end(&r);
	return (Datum) 0;
}

/*
 * The statistics of one product of a stored history as the pass had them
 * (what ph_products_add reads), to take out what the history contributed.
 */
static void
stored_stats(int64 product, int32 purchases, Datum median, bool median_null, Datum cv, bool cv_null,
			 IvStats *st)
{
	memset(st, 0, sizeof *st);
	st->purchases = purchases;
	st->gaps = purchases > 0 ? purchases - 1 : 0;
	if (purchases >= 2)
	{
		if (median_null)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("a purchase history of product " INT64_FORMAT " has %d purchases and no median gap",
							product, (int) purchases)));
		st->median_gap = DatumGetFloat8(median);
	}
	st->has_cv = !cv_null;
	st->cv = cv_null ? 0 : DatumGetFloat8(cv);
}

/*
 * The fold: the new lines, held (few: an incremental refresh's), and the
 * stored histories, streamed, both by (tenant, customer); each customer's
 * stored instants and new lines go to the pass as one customer's lines.
 */
typedef struct PhNewLine
{
	int64		tenant;
	int64		customer;
	Datum		values[PH_NCOLS_IN];
	bool		nulls[PH_NCOLS_IN];
} PhNewLine;

typedef struct PhFold
{
	PhReceiver *r;
	MemoryContext new_ctx;		/* the new lines */
	MemoryContext row_ctx;		/* one stored history; reset per row */
	PhNewLine  *lines;
	size_t		n;
	size_t		cap;
	size_t		next;			/* the first new line not fed yet */
	Datum		zero;			/* numeric 0: the quantity and spend of a stored
								 * product's instants but the first, which
								 * carries its sums */
	uint64		rows;
	PhTable		taken_out;		/* what the stored histories contributed */
} PhFold;

static int
cmp_key(int64 t1, int64 c1, int64 t2, int64 c2)
{
	if (t1 != t2)
		return t1 < t2 ? -1 : 1;
	return c1 < c2 ? -1 : c1 > c2 ? 1 : 0;
}

static void
hold_new_line(Datum *values, bool *nulls, void *arg)
{
	PhFold	   *f = (PhFold *) arg;
	MemoryContext old;
	PhNewLine  *l;

	if (nulls[0] || nulls[1])
		return;
	if (f->n > 0 && cmp_key(f->lines[f->n - 1].tenant, f->lines[f->n - 1].customer,
							DatumGetInt64(values[0]), DatumGetInt64(values[1])) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the new lines must be ordered by tenant_id, customer_id")));
	old = MemoryContextSwitchTo(f->new_ctx);
	if (f->n == f->cap)
	{
		f->cap = f->cap ? 2 * f->cap : 1024;
		f->lines = f->lines ? repalloc_huge(f->lines, sizeof(PhNewLine) * f->cap)
			: palloc_extended(sizeof(PhNewLine) * f->cap, MCXT_ALLOC_HUGE);
	}
	l = &f->lines[f->n++];
	l->tenant = DatumGetInt64(values[0]);
	l->customer = DatumGetInt64(values[1]);
	for (int c = 0; c < PH_NCOLS_IN; c++)
	{
		l->nulls[c] = nulls[c];
		l->values[c] = nulls[c] ? (Datum) 0
			: line_types[c] == NUMERICOID ? datumCopy(values[c], false, -1) : values[c];
	}
	MemoryContextSwitchTo(old);
}

/* The new lines before (tenant, customer), or of it when through is set. */
static void
feed_new_lines(PhFold *f, int64 tenant, int64 customer, bool through)
{
	while (f->next < f->n)
	{
		PhNewLine  *l = &f->lines[f->next];
		int			c = cmp_key(l->tenant, l->customer, tenant, customer);

		if (c > 0 || (c == 0 && !through))
			break;
		ph_row(l->values, l->nulls, f->r);
		f->next++;
	}
}

/* A stored history's array of want elements; a NULL one is corrupt unless nulls_out takes them. */
static Datum *
elements(Datum array, Oid type, int16 len, bool byval, char align, int want, const char *what,
		 bool **nulls_out)
{
	Datum	   *values;
	bool	   *nulls;
	int			n;

	deconstruct_array(DatumGetArrayTypeP(array), type, len, byval, align, &values, &nulls, &n);
	if (n != want)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("a purchase history's %s has %d elements, not %d", what, n, want)));
	for (int i = 0; nulls_out == NULL && i < n; i++)
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("a purchase history's %s has a NULL element", what)));
	if (nulls_out)
		*nulls_out = nulls;
	return values;
}

/*
 * One stored history (tenant_id, customer_id, product_ids, purchases,
 * first_at, last_at, between_at, median_gap_days, cv, quantity, spend): the
 * new lines of the customers before it, its instants as lines, its new
 * lines; and what its statistics contributed to its products', taken out.
 */
static void
fold_history(Datum *values, bool *nulls, void *arg)
{
	PhFold	   *f = (PhFold *) arg;
	int64		tenant,
				customer;
	Datum	   *ids,
			   *purchases,
			   *first,
			   *last,
			   *between,
			   *medians,
			   *cvs,
			   *qty,
			   *spend;
	bool	   *medians_null,
			   *cvs_null,
			   *spend_null;
	int			n,
				nbetween = 0,
				at = 0;
	MemoryContext old;

	if ((++f->rows & 1023) == 0)
		CHECK_FOR_INTERRUPTS();
	for (int c = 0; c < 11; c++)
		if (nulls[c])
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("a stored purchase history has a NULL in column %d", c + 1)));
	tenant = DatumGetInt64(values[0]);
	customer = DatumGetInt64(values[1]);
	feed_new_lines(f, tenant, customer, false);

	old = MemoryContextSwitchTo(f->row_ctx);
	{
		ArrayType  *a = DatumGetArrayTypeP(values[2]);

		n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));
		ids = elements(PointerGetDatum(a), INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, n, "product_ids", NULL);
	}
	purchases = elements(values[3], INT4OID, 4, true, TYPALIGN_INT, n, "purchases", NULL);
	first = elements(values[4], TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, n, "first_at", NULL);
	last = elements(values[5], TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, n, "last_at", NULL);
	for (int i = 0; i < n; i++)
		nbetween += Max(DatumGetInt32(purchases[i]) - 2, 0);
	between = elements(values[6], TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, nbetween, "between_at", NULL);
	medians = elements(values[7], FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, n, "median_gap_days",
					   &medians_null);
	cvs = elements(values[8], FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, n, "cv", &cvs_null);
	qty = elements(values[9], NUMERICOID, -1, false, TYPALIGN_INT, n, "quantity", NULL);
	spend = elements(values[10], NUMERICOID, -1, false, TYPALIGN_INT, n, "spend", &spend_null);

	table_open(f->r, &f->taken_out, tenant, true);
	MemoryContextSwitchTo(f->taken_out.ctx);
	for (int i = 0; i < n; i++)
	{
		IvStats		st;

		stored_stats(DatumGetInt64(ids[i]), DatumGetInt32(purchases[i]), medians[i], medians_null[i],
					 cvs[i], cvs_null[i], &st);
		ph_products_add(&f->taken_out.products, DatumGetInt64(ids[i]), &st);
	}
	MemoryContextSwitchTo(old);

	for (int i = 0; i < n; i++)
	{
		int32		p = DatumGetInt32(purchases[i]);
		Datum		line[PH_NCOLS_IN];
		bool		line_null[PH_NCOLS_IN] = {false, false, false, false, false, false};

		if (p < 1)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("a purchase history of product " INT64_FORMAT " has %d purchases",
							DatumGetInt64(ids[i]), p)));
		line[0] = values[0];
		line[1] = values[1];
		line[2] = ids[i];
		/* the first instant carries the sums, the others nothing */
		for (int k = 0; k < p; k++)
		{
			line[3] = k == 0 ? first[i] : k == p - 1 ? last[i] : between[at + k - 1];
			line[4] = k == 0 ? qty[i] : f->zero;
			line[5] = k == 0 ? spend[i] : f->zero;
			line_null[5] = k == 0 && spend_null[i];
			ph_row(line, line_null, f->r);
		}
		at += Max(p - 2, 0);
	}
	feed_new_lines(f, tenant, customer, true);
	MemoryContextReset(f->row_ctx);
}

/*
 * _purchase_history_fold(histories text, new_lines text, whole_days boolean)
 * RETURNS SETOF _history_pass: _purchase_history's rows for given customers
 * from their stored histories, histories' rows (tenant_id, customer_id,
 * product_ids, purchases, first_at, last_at, between_at, median_gap_days,
 * cv, quantity, spend) as purchase_history_model holds them, and their new
 * lines, new_lines' rows (tenant_id, customer_id, product_id, ordered_at,
 * quantity, spend); both ordered by tenant_id, customer_id.  A stored
 * history holds every distinct instant a customer bought a product at
 * (first_at, between_at, last_at) and the sums of its lines, and the pass's
 * statistics depend on nothing else: the pass over those instants and the
 * new lines gives what it gives over every line.  Then, taken_out, what the
 * stored histories contributed to their products' statistics.  (Until 1.12
 * an incremental refresh read those customers' lines instead, by a scan of
 * every line: at 10M lines, 4-5 s of a worker's CPU for the 1.8M lines of
 * 1% new orders' 28,000 customers.)
 */
Datum
upsell_purchase_history_fold(PG_FUNCTION_ARGS)
{
	static const Oid history_types[11] = {INT8OID, INT8OID, INT8ARRAYOID, INT4ARRAYOID, TIMESTAMPTZARRAYOID,
		TIMESTAMPTZARRAYOID, TIMESTAMPTZARRAYOID, FLOAT8ARRAYOID, FLOAT8ARRAYOID, NUMERICARRAYOID,
	NUMERICARRAYOID};
	static const char *const history_names[11] = {"tenant_id bigint", "customer_id bigint", "product_ids bigint[]",
		"purchases int[]", "first_at timestamptz[]", "last_at timestamptz[]", "between_at timestamptz[]",
	"median_gap_days float8[]", "cv float8[]", "quantity numeric[]", "spend numeric[]"};
	char	   *histories = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *new_lines = text_to_cstring(PG_GETARG_TEXT_PP(1));
	PhReceiver	r;
	PhFold		f;

	receiver_begin(fcinfo, PG_GETARG_BOOL(2), &r);
	memset(&f, 0, sizeof f);
	f.r = &r;
	f.new_ctx = AllocSetContextCreate(CurrentMemoryContext, "upsell purchase history new lines",
									  ALLOCSET_DEFAULT_SIZES);
	f.row_ctx = AllocSetContextCreate(CurrentMemoryContext, "upsell purchase history stored row",
									  ALLOCSET_DEFAULT_SIZES);
	f.taken_out.ctx = AllocSetContextCreate(CurrentMemoryContext, "upsell purchase history taken out",
											ALLOCSET_DEFAULT_SIZES);
	f.zero = DirectFunctionCall1(int4_numeric, Int32GetDatum(0));
	ups_stream_query(new_lines, PH_NCOLS_IN, line_types, line_names, hold_new_line, &f);
	ups_stream_query(histories, 11, history_types, history_names, fold_history, &f);
	feed_new_lines(&f, PG_INT64_MAX, PG_INT64_MAX, true);
	receiver_end(&r);
	table_flush(&r, &f.taken_out, true);
	MemoryContextDelete(f.new_ctx);
	MemoryContextDelete(f.row_ctx);
	MemoryContextDelete(f.taken_out.ctx);
	return (Datum) 0;
}

/*
 * _gaps_update(base float8[], remove float8[], add float8[]): a product's
 * sorted repeat gaps after an incremental refresh replaced some customers'
 * statistics (their old gaps out, their new ones in).  NULL arrays are empty.
 */
Datum
upsell_gaps_update(PG_FUNCTION_ARGS)
{
	size_t		nb = 0,
				nr = 0,
				na = 0,
				n;
	double	   *b = PG_ARGISNULL(0) ? NULL : float8_elems(PG_GETARG_ARRAYTYPE_P(0), &nb);
	double	   *r = PG_ARGISNULL(1) ? NULL : float8_elems(PG_GETARG_ARRAYTYPE_P(1), &nr);
	double	   *a = PG_ARGISNULL(2) ? NULL : float8_elems(PG_GETARG_ARRAYTYPE_P(2), &na);
	double	   *out = palloc(sizeof(double) * Max(nb + na, 1));

	n = ph_multiset_update(b, nb, r, nr, a, na, out);
	PG_RETURN_ARRAYTYPE_P(float8_array(out, n));
}

/* _gaps_median(float8[]): the median as the full build takes it; NULL when empty */
Datum
upsell_gaps_median(PG_FUNCTION_ARGS)
{
	size_t		n;
	double	   *v = float8_elems(PG_GETARG_ARRAYTYPE_P(0), &n);

	if (n == 0)
		PG_RETURN_NULL();
	PG_RETURN_FLOAT8(iv_median(v, n));
}

/* _consumable_by_data(customers, repeaters, shop_pairs, shop_repeat_pairs) */
Datum
upsell_consumable_by_data(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(ph_consumable(PG_GETARG_INT64(0), PG_GETARG_INT64(1),
								 PG_GETARG_INT64(2), PG_GETARG_INT64(3)));
}
