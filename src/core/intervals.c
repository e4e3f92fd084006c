/*
 * intervals.c
 *		Interval statistics of repeat purchases (see intervals.h).
 */
#include "intervals.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ups_host.h"

void
iv_times_init(IvTimes *times)
{
	times->t = NULL;
	times->n = 0;
	times->cap = 0;
}

static void
iv_reserve(IvTimes *times, size_t need)
{
	size_t		cap;

	if (need <= times->cap)
		return;
	cap = times->cap ? times->cap : 8;
	while (cap < need)
		cap *= 2;
	times->t = times->t ? ups_realloc(times->t, cap * sizeof(int64_t))
		: ups_alloc(cap * sizeof(int64_t));
	times->cap = cap;
}

void
iv_times_add(IvTimes *times, int64_t t)
{
	iv_reserve(times, times->n + 1);
	times->t[times->n++] = t;
}

void
iv_times_append(IvTimes *dst, const IvTimes *src)
{
	if (src->n == 0)
		return;
	iv_reserve(dst, dst->n + src->n);
	memcpy(dst->t + dst->n, src->t, src->n * sizeof(int64_t));
	dst->n += src->n;
}

/* Layout: uint64 count, then count int64 times, native byte order. */
size_t
iv_times_serialized_size(const IvTimes *times)
{
	return sizeof(uint64_t) + times->n * sizeof(int64_t);
}

void
iv_times_serialize(const IvTimes *times, char *buf)
{
	uint64_t	n = times->n;

	memcpy(buf, &n, sizeof n);
	if (n)
		memcpy(buf + sizeof n, times->t, n * sizeof(int64_t));
}

const char *
iv_times_deserialize(const char *buf, size_t len, IvTimes *times)
{
	uint64_t	n;

	iv_times_init(times);
	if (len < sizeof n)
		return "truncated header";
	memcpy(&n, buf, sizeof n);
	if (n > (len - sizeof n) / sizeof(int64_t) || len != sizeof n + n * sizeof(int64_t))
		return "length does not match the count of times";
	if (n)
	{
		iv_reserve(times, (size_t) n);
		memcpy(times->t, buf + sizeof n, n * sizeof(int64_t));
		times->n = (size_t) n;
	}
	return NULL;
}

static int
cmp_int64(const void *a, const void *b)
{
	int64_t		x = *(const int64_t *) a;
	int64_t		y = *(const int64_t *) b;

	return (x > y) - (x < y);
}

int
iv_cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return (x > y) - (x < y);
}

double
iv_median(double *values, size_t n)
{
	if (n == 0)
		return NAN;
	qsort(values, n, sizeof(double), iv_cmp_double);
	if (n % 2)
		return values[n / 2];
	return (values[n / 2 - 1] + values[n / 2]) / 2.0;
}

void
iv_stats(IvTimes *times, double units_per_day, bool whole_days, IvStats *out)
{
	size_t		i;
	size_t		m;
	double	   *gaps;
	double		sum = 0;
	double		ss = 0;

	memset(out, 0, sizeof *out);
	if (times->n == 0)
		return;
	qsort(times->t, times->n, sizeof(int64_t), cmp_int64);
	/* one purchase per instant */
	m = 1;
	for (i = 1; i < times->n; i++)
		if (times->t[i] != times->t[m - 1])
			times->t[m++] = times->t[i];
	times->n = m;

	out->purchases = (int64_t) m;
	out->first = times->t[0];
	out->last = times->t[m - 1];
	out->gaps = (int64_t) m - 1;
	if (m < 2)
		return;

	gaps = ups_alloc((m - 1) * sizeof(double));
	for (i = 1; i < m; i++)
	{
		/*
		 * exact as an unsigned difference of the sorted instants (which may
		 * span more than int64, from -infinity on), then converted: no
		 * cancellation on large epochs
		 */
		gaps[i - 1] = (double) ((uint64_t) times->t[i] - (uint64_t) times->t[i - 1]) / units_per_day;
		if (whole_days)
			gaps[i - 1] = round(gaps[i - 1]);
		sum += gaps[i - 1];
	}
	out->mean_gap = sum / (double) (m - 1);
	if (m >= 3)
	{
		for (i = 0; i < m - 1; i++)
			ss += (gaps[i] - out->mean_gap) * (gaps[i] - out->mean_gap);
		out->sd_gap = sqrt(ss / (double) (m - 2));
		if (out->mean_gap > 0)
		{
			out->cv = out->sd_gap / out->mean_gap;
			out->has_cv = true;
		}
	}
	out->median_gap = iv_median(gaps, m - 1);
	ups_free(gaps);
}

double
iv_decay(double age_days, double half_life_days)
{
	if (age_days <= 0)
		return 1.0;
	if (!(half_life_days > 0))
		return 0.0;
	return pow(0.5, age_days / half_life_days);
}
