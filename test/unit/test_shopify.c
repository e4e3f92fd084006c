/*
 * test_shopify.c
 *		Ids, times and decimals of Shopify payloads (src/core/shopify.c).
 */
#define _DEFAULT_SOURCE			/* timegm */
#include <string.h>
#include <time.h>

#include "shopify.h"
#include "unit.h"

static bool
id(const char *s, int64_t *out)
{
	return ups_shopify_id(s, strlen(s), out);
}

static bool
iso(const char *s, int64_t *out)
{
	return ups_iso8601(s, strlen(s), out);
}

static bool
dec(const char *s)
{
	return ups_decimal(s, strlen(s));
}

UNIT_TEST(shopify_ids_numeric_and_gid_agree)
{
	int64_t		a = 0,
				b = 0,
				c = 0;

	CHECK(id("450789469", &a));
	CHECK(id("gid://shopify/Order/450789469", &b));
	CHECK(id("gid://shopify/ProductVariant/450789469?inventory_item_id=7", &c));
	CHECK_EQ_INT(a, 450789469);
	CHECK_EQ_INT(b, a);
	CHECK_EQ_INT(c, a);
	CHECK(id("9223372036854775807", &a));
	CHECK(a == INT64_MAX);
	CHECK(id("0", &a));
	CHECK_EQ_INT(a, 0);
}

UNIT_TEST(shopify_ids_rejected)
{
	int64_t		a = 42;
	const char *bad[] = {"", "9223372036854775808", "99999999999999999999", "-1", "+1",
		" 1", "1 ", "12a", "1.0", "gid://shopify/", "gid://shopify/Order",
		"gid://shopify/Order/", "gid://shopify//1", "gid://shopify/Order/x",
		"gid://shopify/Order/1/2", "gid://other/Order/1", "gid://shopify/Or-der/1",
		"gid://shopify/Order/?x", "GID://shopify/Order/1", "18446744073709551616"};
	size_t		i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		if (id(bad[i], &a))
			unit_fail(__FILE__, __LINE__, bad[i]);
	}
	CHECK_EQ_INT(a, 42);		/* untouched on failure */
	/* not NUL-terminated: only len bytes are read */
	CHECK(ups_shopify_id("1234", 2, &a));
	CHECK_EQ_INT(a, 12);
}

/* the same instant through the C library, for comparison */
static int64_t
utc(int y, int mo, int d, int h, int mi, int s)
{
	struct tm	tm;

	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	return (int64_t) timegm(&tm) * 1000000;
}

UNIT_TEST(shopify_times)
{
	int64_t		t = 0;

	CHECK(iso("2008-01-10T11:00:00-05:00", &t));
	CHECK(t == utc(2008, 1, 10, 16, 0, 0));
	CHECK(iso("2019-04-19T08:46:00Z", &t));
	CHECK(t == utc(2019, 4, 19, 8, 46, 0));
	CHECK(iso("2019-04-19 08:46+0530", &t));
	CHECK(t == utc(2019, 4, 19, 3, 16, 0));
	CHECK(iso("2019-04-19T08:46:00+02", &t));
	CHECK(t == utc(2019, 4, 19, 6, 46, 0));
	CHECK(iso("2020-02-29T23:59:59.123456789Z", &t));
	CHECK(t == utc(2020, 2, 29, 23, 59, 59) + 123456);
	CHECK(iso("1969-12-31T23:59:59.5Z", &t));
	CHECK_EQ_INT(t, -500000);
	CHECK(iso("0001-01-01T00:00:00Z", &t));
	CHECK(iso("9999-12-31T23:59:59Z", &t));
}

UNIT_TEST(shopify_times_rejected)
{
	int64_t		t = 7;
	const char *bad[] = {"", "2019-04-19", "2019-04-19T08:46:00", "2019-02-29T00:00:00Z",
		"2019-13-01T00:00:00Z", "2019-04-31T00:00:00Z", "2019-04-19T24:00:00Z",
		"2019-04-19T08:60:00Z", "2019-04-19T08:46:60Z", "2019-04-19T08:46:00.Z",
		"2019-04-19T08:46:00+16:00", "2019-04-19T08:46:00+05:60", "2019-04-19T08:46:00+5",
		"19-04-19T08:46:00Z", "2019/04/19T08:46:00Z", "2019-04-19T08:46:00Zjunk",
		"0000-01-01T00:00:00Z", "2019-04-19T8:46:00Z", "2019-04-19T08:46:00+05:0",
		"not a time"};
	size_t		i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
	{
		if (iso(bad[i], &t))
			unit_fail(__FILE__, __LINE__, bad[i]);
	}
	CHECK_EQ_INT(t, 7);
}

UNIT_TEST(shopify_decimals)
{
	CHECK(dec("199.00"));
	CHECK(dec("0"));
	CHECK(dec("-3.5"));
	CHECK(dec("+3"));
	CHECK(dec(".5"));
	CHECK(dec("5."));
	CHECK(dec("123456789012345678901234567890"));
	CHECK(!dec("1234567890123456789012345678901"));
	CHECK(!dec(""));
	CHECK(!dec("."));
	CHECK(!dec("-"));
	CHECK(!dec("1e5"));
	CHECK(!dec("1.2.3"));
	CHECK(!dec(" 1"));
	CHECK(!dec("NaN"));
	CHECK(!dec("Infinity"));
	CHECK(!dec("1,5"));
}
