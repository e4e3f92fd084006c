/*
 * shopify.c
 *		Scalars of Shopify payloads (see shopify.h).
 */
#include "shopify.h"

#include <string.h>

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* digits[0..len) as an int64; false when empty, not digits or too large */
static bool
parse_digits(const char *s, size_t len, int64_t *out)
{
	uint64_t	v = 0;
	size_t		i;

	if (len == 0 || len > 19)
		return false;
	for (i = 0; i < len; i++)
	{
		if (!is_digit(s[i]))
			return false;
		v = v * 10 + (uint64_t) (s[i] - '0');
	}
	/* 19 digits fit in uint64 without wrapping; INT64_MAX has 19 */
	if (v > (uint64_t) INT64_MAX)
		return false;
	*out = (int64_t) v;
	return true;
}

bool
ups_shopify_id(const char *s, size_t len, int64_t *out)
{
	static const char prefix[] = "gid://shopify/";
	const size_t plen = sizeof(prefix) - 1;
	size_t		i,
				type_end,
				end;

	if (len > 0 && is_digit(s[0]))
		return parse_digits(s, len, out);
	if (len <= plen || memcmp(s, prefix, plen) != 0)
		return false;
	/* the type: letters, then '/' */
	for (i = plen; i < len && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')); i++)
		;
	if (i == plen || i >= len || s[i] != '/')
		return false;
	type_end = i + 1;
	for (end = type_end; end < len && s[end] != '?'; end++)
		;
	return parse_digits(s + type_end, end - type_end, out);
}

/* exactly n digits at s[*pos], advancing *pos */
static bool
fixed(const char *s, size_t len, size_t *pos, int n, int *out)
{
	int			v = 0;
	int			i;

	if (*pos + (size_t) n > len)
		return false;
	for (i = 0; i < n; i++)
	{
		char		c = s[*pos + i];

		if (!is_digit(c))
			return false;
		v = v * 10 + (c - '0');
	}
	*pos += n;
	*out = v;
	return true;
}

static bool
expect(const char *s, size_t len, size_t *pos, char c)
{
	if (*pos < len && s[*pos] == c)
	{
		(*pos)++;
		return true;
	}
	return false;
}

/* days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant) */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t		era,
				yoe,
				doy,
				doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int
days_in_month(int y, int m)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool		leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : days[m - 1];
}

bool
ups_iso8601(const char *s, size_t len, int64_t *usec_out)
{
	size_t		pos = 0;
	int			y,
				mo,
				d,
				h,
				mi,
				sec = 0,
				oh = 0,
				om = 0,
				sign;
	int64_t		usec = 0;

	if (!fixed(s, len, &pos, 4, &y) || !expect(s, len, &pos, '-') ||
		!fixed(s, len, &pos, 2, &mo) || !expect(s, len, &pos, '-') ||
		!fixed(s, len, &pos, 2, &d))
		return false;
	if (!expect(s, len, &pos, 'T') && !expect(s, len, &pos, ' '))
		return false;
	if (!fixed(s, len, &pos, 2, &h) || !expect(s, len, &pos, ':') ||
		!fixed(s, len, &pos, 2, &mi))
		return false;
	if (expect(s, len, &pos, ':'))
	{
		int64_t		scale = 100000;

		if (!fixed(s, len, &pos, 2, &sec))
			return false;
		if (expect(s, len, &pos, '.'))
		{
			/* fractions beyond microseconds are truncated */
			if (pos >= len || !is_digit(s[pos]))
				return false;
			for (; pos < len && is_digit(s[pos]); pos++, scale /= 10)
				usec += scale * (s[pos] - '0');
		}
	}
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
		h > 23 || mi > 59 || sec > 59)
		return false;
	if (expect(s, len, &pos, 'Z'))
		sign = 0;
	else if (expect(s, len, &pos, '+'))
		sign = 1;
	else if (expect(s, len, &pos, '-'))
		sign = -1;
	else
		return false;
	if (sign != 0)
	{
		if (!fixed(s, len, &pos, 2, &oh))
			return false;
		if (pos < len)
		{
			expect(s, len, &pos, ':');
			if (!fixed(s, len, &pos, 2, &om))
				return false;
		}
		if (oh > 15 || om > 59)
			return false;
	}
	if (pos != len)
		return false;
	*usec_out = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec
				  - (int64_t) sign * (oh * 3600 + om * 60)) * 1000000) + usec;
	return true;
}

bool
ups_decimal(const char *s, size_t len)
{
	size_t		pos = 0;
	int			digits = 0;
	bool		dot = false;

	if (pos < len && (s[pos] == '+' || s[pos] == '-'))
		pos++;
	for (; pos < len; pos++)
	{
		if (is_digit(s[pos]))
			digits++;
		else if (s[pos] == '.' && !dot)
			dot = true;
		else
			return false;
	}
	return digits > 0 && digits <= 30;
}
