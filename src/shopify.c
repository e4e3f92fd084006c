/*
 * shopify.c
 *		fmgr layer of the Shopify payload scalars (src/core/shopify.c):
 *		jsonb values to bigint ids, timestamptz and numeric, NULL for
 *		anything malformed, never an error.
 */
#include "postgres.h"

#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "shopify.h"

PG_FUNCTION_INFO_V1(upsell_shopify_id_jsonb);
PG_FUNCTION_INFO_V1(upsell_shopify_id_text);
PG_FUNCTION_INFO_V1(upsell_json_time);
PG_FUNCTION_INFO_V1(upsell_json_number);

/* The scalar a jsonb value holds; false for arrays, objects and JSON null. */
static bool
jsonb_scalar(Jsonb *jb, JsonbValue *v)
{
	if (!JB_ROOT_IS_SCALAR(jb) || !JsonbExtractScalar(&jb->root, v))
		return false;
	return v->type == jbvString || v->type == jbvNumeric || v->type == jbvBool;
}

static bool
id_of(const char *s, size_t len, int64 *out)
{
	int64_t		v;

	if (!ups_shopify_id(s, len, &v))
		return false;
	*out = (int64) v;
	return true;
}

/*
 * _shopify_id(jsonb) -> bigint: a number with no fraction, a string of
 * digits or a gid://shopify/Type/N string; NULL for anything else.
 */
Datum
upsell_shopify_id_jsonb(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(0);
	JsonbValue	v;
	int64		id;

	if (!jsonb_scalar(jb, &v))
		PG_RETURN_NULL();
	if (v.type == jbvString && id_of(v.val.string.val, v.val.string.len, &id))
		PG_RETURN_INT64(id);
	if (v.type == jbvNumeric)
	{
		/* numeric_out of an integral value is its digits (no exponent) */
		char	   *digits = DatumGetCString(DirectFunctionCall1(numeric_out,
																 NumericGetDatum(v.val.numeric)));

		if (id_of(digits, strlen(digits), &id))
			PG_RETURN_INT64(id);
	}
	PG_RETURN_NULL();
}

/* shopify_id(text) -> bigint: the same for an id given as text */
Datum
upsell_shopify_id_text(PG_FUNCTION_ARGS)
{
	text	   *t = PG_GETARG_TEXT_PP(0);
	int64		id;

	if (id_of(VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), &id))
		PG_RETURN_INT64(id);
	PG_RETURN_NULL();
}

/* _json_time(jsonb) -> timestamptz: an ISO 8601 string with an offset */
Datum
upsell_json_time(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(0);
	JsonbValue	v;
	int64_t		usec;
	TimestampTz ts;

	if (!jsonb_scalar(jb, &v) || v.type != jbvString ||
		!ups_iso8601(v.val.string.val, v.val.string.len, &usec))
		PG_RETURN_NULL();
	ts = (TimestampTz) usec -
		(TimestampTz) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
	if (!IS_VALID_TIMESTAMP(ts))
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(ts);
}

/*
 * _json_number(jsonb) -> numeric: a JSON number, or a decimal string as
 * Shopify writes money ("199.00"); NULL for anything else.
 */
Datum
upsell_json_number(PG_FUNCTION_ARGS)
{
	Jsonb	   *jb = PG_GETARG_JSONB_P(0);
	JsonbValue	v;

	if (!jsonb_scalar(jb, &v))
		PG_RETURN_NULL();
	if (v.type == jbvNumeric)
		PG_RETURN_NUMERIC(v.val.numeric);
	if (v.type == jbvString && ups_decimal(v.val.string.val, v.val.string.len))
	{
		/* validated: numeric input cannot fail on it */
		char	   *s = pnstrdup(v.val.string.val, v.val.string.len);

		PG_RETURN_DATUM(DirectFunctionCall3(numeric_in, CStringGetDatum(s),
											ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	}
	PG_RETURN_NULL();
}
