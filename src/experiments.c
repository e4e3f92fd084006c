/*
 * experiments.c
 *		SQL face of src/core/stats.c: variant assignment by a stable hash,
 *		distribution tails, and the tests behind upsell.experiment_results.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "common/hashfn.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "shopify.h"
#include "stats.h"
#include "upsell.h"

PG_FUNCTION_INFO_V1(upsell_assign);
PG_FUNCTION_INFO_V1(upsell_unit_hash);
PG_FUNCTION_INFO_V1(upsell_unit_customer_key);
PG_FUNCTION_INFO_V1(upsell_normal_cdf);
PG_FUNCTION_INFO_V1(upsell_student_t_cdf);
PG_FUNCTION_INFO_V1(upsell_chi_square_sf);
PG_FUNCTION_INFO_V1(upsell_two_proportion_test);
PG_FUNCTION_INFO_V1(upsell_welch_t_test);
PG_FUNCTION_INFO_V1(upsell_srm_test);

/* A float8[] without NULLs as a C array; errors name the argument. */
static double *
float8_array(ArrayType *a, const char *what, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	double	   *out;
	int			i;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	deconstruct_array(a, FLOAT8OID, sizeof(float8), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, n);
	out = palloc(sizeof(double) * Max(*n, 1));
	for (i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", what)));
		out[i] = DatumGetFloat8(elems[i]);
	}
	return out;
}

static int64 *
int8_array(ArrayType *a, const char *what, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	int64	   *out;
	int			i;

	if (ARR_NDIM(a) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("%s must be a one-dimensional array", what)));
	deconstruct_array(a, INT8OID, sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE,
					  &elems, &nulls, n);
	out = palloc(sizeof(int64) * Max(*n, 1));
	for (i = 0; i < *n; i++)
	{
		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", what)));
		out[i] = DatumGetInt64(elems[i]);
	}
	return out;
}

static void
check_weights(const double *w, int k)
{
	double		total = 0;
	int			i;

	for (i = 0; i < k; i++)
	{
		if (!(w[i] >= 0) || !isfinite(w[i]))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("variant weight %g is invalid", w[i]),
					 errdetail("Weights must be finite and zero or positive.")));
		total += w[i];
	}
	if (!(total > 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("variant weights sum to zero"),
				 errhint("Give at least one variant a positive weight.")));
}

/*
 * The variants of one experiment, cached in fn_extra while nothing can have
 * changed them: the same transaction and top-level statement, no write since
 * (the command id), the same tenant binding.  fn_extra outlives a statement
 * where PL/pgSQL keeps a simple expression for the transaction (the
 * exposures' trigger): keyed by the name alone (until 1.8), exposures after
 * a weight change in the same transaction went to the old split, and after
 * SET LOCAL upsell.tenant_id to an experiment of another tenant.
 */
typedef struct VariantCache
{
	char	   *experiment;		/* NUL-terminated name */
	TimestampTz xact_start;
	TimestampTz statement_start;
	CommandId	cid;
	bool		bound;
	int64		bound_tenant;
	int			k;
	char	  **names;
	double	   *weights;
	int			fallback;		/* the variant of every unit when no weight
								 * is positive: the control, else the first */
} VariantCache;

static VariantCache *
load_variants(FunctionCallInfo fcinfo, const char *experiment)
{
	MemoryContext mcxt = fcinfo->flinfo->fn_mcxt;
	VariantCache *cache = (VariantCache *) fcinfo->flinfo->fn_extra;
	char	   *schema;
	StringInfoData sql;
	Oid			argtypes[2] = {TEXTOID, INT8OID};
	Datum		args[2];
	char		nulls[2] = {' ', ' '};
	int			i;
	int			guc_level;
	uint64		nvariants;
	SPITupleTable *variants;
	int64		bound_tenant;
	bool		bound = upsell_session_tenant(&bound_tenant);

	if (!bound)
		bound_tenant = 0;
	if (cache && strcmp(cache->experiment, experiment) == 0 &&
		cache->xact_start == GetCurrentTransactionStartTimestamp() &&
		cache->statement_start == GetCurrentStatementStartTimestamp() &&
		cache->cid == GetCurrentCommandId(false) &&
		cache->bound == bound && cache->bound_tenant == bound_tenant)
		return cache;

	schema = get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid));
	initStringInfo(&sql);
	/*
	 * a session bound to a tenant reaches that tenant's experiments only
	 * (as upsell._experiment): another's is as unknown as a name never
	 * created, its variants not told
	 */
	appendStringInfo(&sql,
					 "SELECT v.variant, %s._weight_share(v.weight), "
					 "v.variant OPERATOR(pg_catalog.=) e.control FROM %s.experiment_variants v "
					 "JOIN %s.experiments e ON e.experiment OPERATOR(pg_catalog.=) v.experiment "
					 "WHERE v.experiment OPERATOR(pg_catalog.=) $1 "
					 "AND ($2::pg_catalog.int8 IS NULL OR e.tenant_id OPERATOR(pg_catalog.=) $2) "
					 "ORDER BY v.variant COLLATE \"C\"",
					 quote_identifier(schema), quote_identifier(schema), quote_identifier(schema));
	args[0] = CStringGetTextDatum(experiment);
	args[1] = Int64GetDatum(bound_tenant);
	nulls[1] = bound ? ' ' : 'n';
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	guc_level = upsell_pin_search_path();
	if (SPI_execute_with_args(sql.data, 2, argtypes, args, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading experiment variants failed");
	nvariants = SPI_processed;
	variants = SPI_tuptable;
	if (nvariants == 0)
	{
		resetStringInfo(&sql);
		appendStringInfo(&sql, "SELECT FROM %s.experiments e WHERE e.experiment OPERATOR(pg_catalog.=) $1 "
						 "AND ($2::pg_catalog.int8 IS NULL OR e.tenant_id OPERATOR(pg_catalog.=) $2)",
						 quote_identifier(schema));
		if (SPI_execute_with_args(sql.data, 2, argtypes, args, nulls, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "reading experiments failed");
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 bound ?
					 errmsg("experiment \"%s\" does not exist for tenant " INT64_FORMAT,
							experiment, bound_tenant) :
					 errmsg("experiment \"%s\" does not exist", experiment),
					 errhint("Experiments are rows of upsell.experiments%s.",
							 bound ? ", each of one tenant" : "")));
		/* (being set up: no variants, k = 0: upsell_assign gives none) */
	}

	if (cache == NULL)
		cache = MemoryContextAllocZero(mcxt, sizeof(VariantCache));
	else
	{
		for (i = 0; i < cache->k; i++)
			pfree(cache->names[i]);
		pfree(cache->names);
		pfree(cache->weights);
		pfree(cache->experiment);
	}
	cache->experiment = MemoryContextStrdup(mcxt, experiment);
	cache->xact_start = GetCurrentTransactionStartTimestamp();
	cache->statement_start = GetCurrentStatementStartTimestamp();
	cache->cid = GetCurrentCommandId(false);
	cache->bound = bound;
	cache->bound_tenant = bound_tenant;
	cache->k = (int) nvariants;
	cache->names = MemoryContextAlloc(mcxt, sizeof(char *) * cache->k);
	cache->weights = MemoryContextAlloc(mcxt, sizeof(double) * cache->k);
	cache->fallback = 0;
	for (i = 0; i < cache->k; i++)
	{
		HeapTuple	tup = variants->vals[i];
		TupleDesc	desc = variants->tupdesc;
		bool		isnull;
		Datum		w;

		cache->names[i] = MemoryContextStrdup(mcxt, SPI_getvalue(tup, desc, 1));
		w = SPI_getbinval(tup, desc, 2, &isnull);
		cache->weights[i] = isnull ? -1 : DatumGetFloat8(w);
		if (DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull)))
			cache->fallback = i;
	}
	upsell_unpin_search_path(guc_level);
	SPI_finish();
	fcinfo->flinfo->fn_extra = cache;
	return cache;
}

/*
 * assign(experiment text, unit_id text) -> the unit's variant
 *
 * Weights without a positive one (all 0, or below float8's range) split
 * nobody.  The experiment_variants trigger refuses to commit them, but rows
 * from before 1.9 or loaded with triggers off may hold them, and this runs
 * in every page naming the experiment: every unit then gets the control
 * (the first variant when the control is not one of them), which is what
 * the page shows without the test, and offers_json says so in its notes
 * (until 1.9 the page failed: "variant weights sum to zero").
 *
 * An experiment without variants (being set up) has no variant to give:
 * NULL, so that variant_offer_types() shows everything, as without the
 * experiment, and record_exposure() records nothing (until 1.9 every
 * request naming it failed: "has no variants").
 */
Datum
upsell_assign(PG_FUNCTION_ARGS)
{
	text	   *experiment = PG_GETARG_TEXT_PP(0);
	text	   *unit = PG_GETARG_TEXT_PP(1);
	char	   *name = text_to_cstring(experiment);
	VariantCache *cache = load_variants(fcinfo, name);
	uint64		h;
	int			b;

	if (cache->k == 0)
		PG_RETURN_NULL();
	h = ups_unit_hash(VARDATA_ANY(experiment), VARSIZE_ANY_EXHDR(experiment),
					  VARDATA_ANY(unit), VARSIZE_ANY_EXHDR(unit));
	b = ups_assign_bucket(h, cache->weights, cache->k);
	if (b < 0)
		b = cache->fallback;
	PG_RETURN_TEXT_P(cstring_to_text(cache->names[b]));
}

/* unit_hash(experiment text, unit_id text) -> bigint (the hash, as signed) */
Datum
upsell_unit_hash(PG_FUNCTION_ARGS)
{
	text	   *experiment = PG_GETARG_TEXT_PP(0);
	text	   *unit = PG_GETARG_TEXT_PP(1);

	PG_RETURN_INT64((int64) ups_unit_hash(VARDATA_ANY(experiment), VARSIZE_ANY_EXHDR(experiment),
										  VARDATA_ANY(unit), VARSIZE_ANY_EXHDR(unit)));
}

/*
 * _unit_customer(unit_id text, kind text) -> bigint
 * The customer key a unit id stands for: kind 'text' hashes it like
 * upsell.order_key() (hashtextextended under the C collation, seed 0); kind
 * 'integer' reads it as a 64-bit integer (surrounding blanks allowed) and
 * gives NULL when it is not one; kind 'shopify' (customers of registered
 * Shopify orders) also reads gid://shopify/Customer/N as N.
 */
Datum
upsell_unit_customer_key(PG_FUNCTION_ARGS)
{
	text	   *unit = PG_GETARG_TEXT_PP(0);
	text	   *kind = PG_GETARG_TEXT_PP(1);
	const char *p = VARDATA_ANY(unit),
			   *end = p + VARSIZE_ANY_EXHDR(unit);
	bool		neg = false;
	uint64		v = 0;
	int			digits = 0;

	if (VARSIZE_ANY_EXHDR(kind) == 4 && memcmp(VARDATA_ANY(kind), "text", 4) == 0)
		PG_RETURN_DATUM(DirectFunctionCall2Coll(hashtextextended, C_COLLATION_OID,
												PointerGetDatum(unit), Int64GetDatum(0)));
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	if (VARSIZE_ANY_EXHDR(kind) == 7 && memcmp(VARDATA_ANY(kind), "shopify", 7) == 0 &&
		p < end && *p == 'g')
	{
		int64_t		id;
		const char *last = end;

		while (last > p && (last[-1] == ' ' || last[-1] == '\t' || last[-1] == '\n' || last[-1] == '\r'))
			last--;
		if (!ups_shopify_id(p, last - p, &id))
			PG_RETURN_NULL();
		PG_RETURN_INT64((int64) id);
	}
	if (p < end && (*p == '+' || *p == '-'))
		neg = (*p++ == '-');
	for (; p < end && *p >= '0' && *p <= '9'; p++, digits++)
	{
		v = v * 10 + (uint64) (*p - '0');
		if (v > (uint64) PG_INT64_MAX + (neg ? 1 : 0))
			PG_RETURN_NULL();
	}
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	if (digits == 0 || p != end)
		PG_RETURN_NULL();
	PG_RETURN_INT64(neg ? (int64) (0 - v) : (int64) v);
}

Datum
upsell_normal_cdf(PG_FUNCTION_ARGS)
{
	PG_RETURN_FLOAT8(ups_normal_cdf(PG_GETARG_FLOAT8(0)));
}

static void
check_df(double df)
{
	if (!(df > 0) || isinf(df))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("degrees of freedom must be positive and finite, not %g", df)));
}

Datum
upsell_student_t_cdf(PG_FUNCTION_ARGS)
{
	double		df = PG_GETARG_FLOAT8(1);

	check_df(df);
	PG_RETURN_FLOAT8(ups_t_cdf(PG_GETARG_FLOAT8(0), df));
}

Datum
upsell_chi_square_sf(PG_FUNCTION_ARGS)
{
	double		df = PG_GETARG_FLOAT8(1);

	check_df(df);
	PG_RETURN_FLOAT8(ups_chisq_sf(PG_GETARG_FLOAT8(0), df));
}

static double
get_confidence(FunctionCallInfo fcinfo, int argno)
{
	double		c = PG_GETARG_FLOAT8(argno);

	if (!(c > 0 && c < 1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("confidence must be between 0 and 1 exclusive, not %g", c)));
	return c;
}

/* A composite of float8 columns; NaN becomes NULL. */
static Datum
float8_record(FunctionCallInfo fcinfo, const double *v, int n)
{
	TupleDesc	tupdesc;
	Datum		values[8];
	bool		nulls[8];
	int			i;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	tupdesc = BlessTupleDesc(tupdesc);
	Assert(n <= 8 && tupdesc->natts == n);
	for (i = 0; i < n; i++)
	{
		nulls[i] = isnan(v[i]);
		values[i] = Float8GetDatum(v[i]);
	}
	return HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls));
}

/*
 * two_proportion_test(control_successes, control_trials, variant_successes,
 *		variant_trials, confidence) -> (diff, z, p_value, ci_low, ci_high)
 */
Datum
upsell_two_proportion_test(PG_FUNCTION_ARGS)
{
	int64		x1 = PG_GETARG_INT64(0),
				n1 = PG_GETARG_INT64(1),
				x2 = PG_GETARG_INT64(2),
				n2 = PG_GETARG_INT64(3);
	double		conf = get_confidence(fcinfo, 4);
	UpsTestResult r;
	double		v[5];
	int			rc;

	rc = ups_two_proportion_test(x1, n1, x2, n2, conf, &r);
	if (rc == -2)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("trials above 2^53 cannot be tested exactly: %lld and %lld",
						(long long) n1, (long long) n2)));
	if (rc != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid counts for a two-proportion test: %lld of %lld against %lld of %lld",
						(long long) x1, (long long) n1, (long long) x2, (long long) n2),
				 errdetail("Each group needs at least one trial and between 0 and that many successes.")));
	v[0] = r.diff;
	v[1] = r.stat;
	v[2] = r.p_value;
	v[3] = r.ci_low;
	v[4] = r.ci_high;
	PG_RETURN_DATUM(float8_record(fcinfo, v, 5));
}

/*
 * welch_t_test(n1, mean1, var1, n2, mean2, var2, confidence)
 *		-> (diff, t, df, p_value, ci_low, ci_high)
 */
Datum
upsell_welch_t_test(PG_FUNCTION_ARGS)
{
	double		n1 = PG_GETARG_FLOAT8(0),
				m1 = PG_GETARG_FLOAT8(1),
				v1 = PG_GETARG_FLOAT8(2),
				n2 = PG_GETARG_FLOAT8(3),
				m2 = PG_GETARG_FLOAT8(4),
				v2 = PG_GETARG_FLOAT8(5);
	double		conf = get_confidence(fcinfo, 6);
	UpsTestResult r;
	double		v[6];

	if (ups_welch_test(n1, m1, v1, n2, m2, v2, conf, &r) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid summary statistics for Welch's t-test"),
				 errdetail("Each group needs at least 2 observations, a finite mean and a variance of zero or more.")));
	v[0] = r.diff;
	v[1] = r.stat;
	v[2] = r.df;
	v[3] = r.p_value;
	v[4] = r.ci_low;
	v[5] = r.ci_high;
	PG_RETURN_DATUM(float8_record(fcinfo, v, 6));
}

/* srm_test(observed bigint[], weights float8[]) -> (chi2, df, p_value) */
Datum
upsell_srm_test(PG_FUNCTION_ARGS)
{
	int			k,
				kw,
				i;
	int64	   *obs = int8_array(PG_GETARG_ARRAYTYPE_P(0), "observed", &k);
	double	   *w = float8_array(PG_GETARG_ARRAYTYPE_P(1), "weights", &kw);
	double		v[3];

	if (k != kw)
		ereport(ERROR,
				(errcode(ERRCODE_ARRAY_SUBSCRIPT_ERROR),
				 errmsg("observed has %d elements but weights has %d", k, kw)));
	if (k < 2)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a sample-ratio check needs at least 2 variants")));
	check_weights(w, k);
	for (i = 0; i < k; i++)
		if (obs[i] < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("observed count %lld is negative", (long long) obs[i])));
	if (ups_chisq_gof(obs, w, k, &v[0], &v[1], &v[2]) != 0)
		elog(ERROR, "chi-square test rejected checked input");
	PG_RETURN_DATUM(float8_record(fcinfo, v, 3));
}
