/*
 * query_lines.c
 *		Order lines from any query (see query_lines.h).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "query_lines.h"
#include "query_stream.h"
#include "ups_host.h"

static bool
is_integer_type(Oid type)
{
	return type == INT2OID || type == INT4OID || type == INT8OID;
}

static int64
integer_datum(Datum d, Oid type)
{
	switch (type)
	{
		case INT2OID:
			return DatumGetInt16(d);
		case INT4OID:
			return DatumGetInt32(d);
		default:
			return DatumGetInt64(d);
	}
}

/*
 * A tenant's lines arrive in chunks (growing to CHUNK_MAX lines) and are put
 * together once at the end: growing one array by realloc copied it again
 * and again (a twentieth of a bundle build at 10M lines).
 */
#define CHUNK_MIN	1024
#define CHUNK_MAX	((size_t) 1 << 20)

typedef struct LineChunk
{
	CoocLine   *lines;
	size_t		n;
	size_t		cap;
} LineChunk;

typedef struct TenantChunks
{
	LineChunk  *chunks;
	int			nchunks;
	int			maxchunks;
	size_t		total;
} TenantChunks;

/* What the rows of the query are read into (ups_run_query's argument). */
typedef struct LinesReceiver
{
	bool		allow_tenant;
	MemoryContext ctx;			/* where the lines go */
	Oid			order_type;
	Oid			product_type;
	Oid			tenant_type;
	Oid			order_out;
	int			natts;
	TenantLines *tenants;
	TenantChunks *chunks;		/* by tenant */
	int			ntenants;
	int			maxtenants;
} LinesReceiver;

static void
lines_columns(TupleDesc desc, void *arg)
{
	LinesReceiver *r = (LinesReceiver *) arg;
	bool		order_varlena;

	if (r->allow_tenant && desc->natts != 2 && desc->natts != 3)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("query must return two or three columns, not %d", desc->natts),
				 errhint("Return (order id, product id) or (order id, product id, tenant id).")));
	if (!r->allow_tenant && desc->natts != 2)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("query must return two columns, not %d", desc->natts),
				 errhint("Return (order id, product id).")));
	r->natts = desc->natts;
	r->order_type = TupleDescAttr(desc, 0)->atttypid;
	r->product_type = TupleDescAttr(desc, 1)->atttypid;
	if (!is_integer_type(r->product_type))
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("product id column must be an integer type, not %s",
						format_type_be(r->product_type))));
	if (desc->natts == 3)
	{
		r->tenant_type = TupleDescAttr(desc, 2)->atttypid;
		if (!is_integer_type(r->tenant_type))
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("tenant id column must be an integer type, not %s",
							format_type_be(r->tenant_type))));
	}
	getTypeOutputInfo(r->order_type, &r->order_out, &order_varlena);
}

/* As cooc_lines_add: an exact repeat of the previous line is skipped. */
static void
add_line(TenantChunks *c, CoocLines *lines, int64 order_key, int64 product_id)
{
	LineChunk  *k = c->nchunks ? &c->chunks[c->nchunks - 1] : NULL;

	if (k && k->n > 0)
	{
		CoocLine   *last = &k->lines[k->n - 1];

		if (last->order_key == order_key && last->product_id == product_id)
			return;
		if (last->order_key > order_key ||
			(last->order_key == order_key && last->product_id > product_id))
			lines->compact = false;
	}
	if (k == NULL || k->n == k->cap)
	{
		size_t		cap = k ? Min(k->cap * 2, CHUNK_MAX) : CHUNK_MIN;

		if (c->nchunks == c->maxchunks)
		{
			c->maxchunks = c->maxchunks ? c->maxchunks * 2 : 16;
			c->chunks = c->chunks ? repalloc(c->chunks, c->maxchunks * sizeof(LineChunk))
				: palloc(c->maxchunks * sizeof(LineChunk));
		}
		k = &c->chunks[c->nchunks++];
		k->lines = ups_alloc(cap * sizeof(CoocLine));
		k->n = 0;
		k->cap = cap;
	}
	k->lines[k->n].order_key = order_key;
	k->lines[k->n].product_id = product_id;
	k->n++;
	c->total++;
}

/* A tenant's chunks into its lines: one array of the exact size. */
static void
join_chunks(TenantChunks *c, CoocLines *lines)
{
	size_t		at = 0;
	int			i;

	if (c->total == 0)
		return;
	lines->lines = ups_alloc(c->total * sizeof(CoocLine));
	lines->cap = c->total;
	for (i = 0; i < c->nchunks; i++)
	{
		memcpy(lines->lines + at, c->chunks[i].lines, c->chunks[i].n * sizeof(CoocLine));
		at += c->chunks[i].n;
		ups_free(c->chunks[i].lines);
	}
	lines->n = at;
	if (c->chunks)
		pfree(c->chunks);
}

static void
lines_row(Datum *values, bool *nulls, void *arg)
{
	LinesReceiver *r = (LinesReceiver *) arg;
	TenantLines *t = NULL;
	int64		tenant = 0;
	bool		tnull = false;
	int			i;

	if (r->natts == 3)
	{
		tnull = nulls[2];
		if (!tnull)
			tenant = integer_datum(values[2], r->tenant_type);
	}
	for (i = 0; i < r->ntenants; i++)
		if (r->tenants[i].tenant == tenant)
		{
			t = &r->tenants[i];
			break;
		}
	if (t == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(r->ctx);

		if (r->ntenants == r->maxtenants)
		{
			r->maxtenants = r->maxtenants ? r->maxtenants * 2 : 8;
			r->tenants = r->tenants ? repalloc(r->tenants, r->maxtenants * sizeof(TenantLines))
				: palloc(r->maxtenants * sizeof(TenantLines));
			r->chunks = r->chunks ? repalloc(r->chunks, r->maxtenants * sizeof(TenantChunks))
				: palloc(r->maxtenants * sizeof(TenantChunks));
		}
		memset(&r->chunks[r->ntenants], 0, sizeof(TenantChunks));
		t = &r->tenants[r->ntenants++];
		t->tenant = tenant;
		cooc_lines_init(&t->lines);
		MemoryContextSwitchTo(old);
	}
	if (nulls[0] || nulls[1] || tnull)
		t->lines.skipped++;
	else
	{
		Datum		o = values[0];
		int64		order_key;
		MemoryContext old;

		if (is_integer_type(r->order_type))
			order_key = integer_datum(o, r->order_type);
		else
		{
			char	   *s = OidOutputFunctionCall(r->order_out, o);

			order_key = (int64) hash_bytes_extended((unsigned char *) s, strlen(s), 0);
			pfree(s);
		}
		old = MemoryContextSwitchTo(r->ctx);
		add_line(&r->chunks[t - r->tenants], &t->lines, order_key,
				 integer_datum(values[1], r->product_type));
		MemoryContextSwitchTo(old);
	}
}

TenantLines *
ups_query_lines(const char *query, bool allow_tenant, MemoryContext ctx,
				int *ntenants_out, bool *has_tenant)
{
	LinesReceiver r;

	memset(&r, 0, sizeof r);
	r.allow_tenant = allow_tenant;
	r.ctx = ctx;
	ups_run_query(query, true, lines_columns, lines_row, &r);
	{
		MemoryContext old = MemoryContextSwitchTo(ctx);

		for (int i = 0; i < r.ntenants; i++)
			join_chunks(&r.chunks[i], &r.tenants[i].lines);
		MemoryContextSwitchTo(old);
	}
	*ntenants_out = r.ntenants;
	*has_tenant = r.natts == 3;
	return r.tenants;
}
