/*
 * test_intervals.c
 *		Unit tests of the interval statistics core (src/core/intervals.c).
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "intervals.h"
#include "unit.h"
#include "ups_host.h"

#define DAY 86400000000LL		/* microseconds, as the server passes them */

static void
add_days(IvTimes *t, const int *days, int n)
{
	int			i;

	for (i = 0; i < n; i++)
		iv_times_add(t, (int64_t) days[i] * DAY);
}

UNIT_TEST(intervals_regular_gaps)
{
	/* given out of order; gaps 30, 30, 30 */
	int			days[] = {90, 0, 60, 30};
	IvTimes		t;
	IvStats		s;

	iv_times_init(&t);
	add_days(&t, days, 4);
	iv_stats(&t, (double) DAY, false, &s);
	CHECK_EQ_INT(s.purchases, 4);
	CHECK_EQ_INT(s.gaps, 3);
	CHECK_EQ_INT(s.first, 0);
	CHECK_EQ_INT(s.last, 90 * DAY);
	CHECK_NEAR(s.median_gap, 30, 1e-12);
	CHECK_NEAR(s.mean_gap, 30, 1e-12);
	CHECK_NEAR(s.sd_gap, 0, 1e-12);
	CHECK(s.has_cv);
	CHECK_NEAR(s.cv, 0, 1e-12);
	ups_free(t.t);
}

UNIT_TEST(intervals_whole_days_across_daylight_saving)
{
	/*
	 * midnights of Berlin as instants: March 1 (CET, 23:00 UTC the day
	 * before), April 1 and May 1 (CEST, 22:00 UTC): 30.958 and 30 days
	 * apart, 31 and 30 as days of the shop
	 */
	int64_t		hour = DAY / 24;
	int64_t		march1 = 60 * DAY - hour,
				april1 = 91 * DAY - 2 * hour,
				may1 = 121 * DAY - 2 * hour;
	IvTimes		t;
	IvStats		s;

	iv_times_init(&t);
	iv_times_add(&t, march1);
	iv_times_add(&t, april1);
	iv_times_add(&t, may1);
	iv_stats(&t, (double) DAY, false, &s);
	CHECK_NEAR(s.median_gap, (30.0 + 31.0 - 1.0 / 24) / 2, 1e-12);
	iv_stats(&t, (double) DAY, true, &s);
	CHECK_NEAR(s.median_gap, 30.5, 1e-12);
	CHECK_NEAR(s.mean_gap, 30.5, 1e-12);
	CHECK_EQ_INT(s.first, march1);
	CHECK_EQ_INT(s.last, may1);
	ups_free(t.t);
}

UNIT_TEST(intervals_median_is_robust)
{
	/* gaps 10, 12, 14, 100: median 13, mean 34, sample sd 44.0303... */
	int			days[] = {0, 10, 22, 36, 136};
	IvTimes		t;
	IvStats		s;
	double		sd = sqrt((24.0 * 24 + 22 * 22 + 20 * 20 + 66 * 66) / 3.0);

	iv_times_init(&t);
	add_days(&t, days, 5);
	iv_stats(&t, (double) DAY, false, &s);
	CHECK_NEAR(s.median_gap, 13, 1e-12);
	CHECK_NEAR(s.mean_gap, 34, 1e-12);
	CHECK_NEAR(s.sd_gap, sd, 1e-9);
	CHECK_NEAR(s.cv, sd / 34, 1e-12);
	ups_free(t.t);
}

UNIT_TEST(intervals_same_instant_is_one_purchase)
{
	int			days[] = {5, 5, 5, 12};
	IvTimes		t;
	IvStats		s;

	iv_times_init(&t);
	add_days(&t, days, 4);
	iv_stats(&t, (double) DAY, false, &s);
	CHECK_EQ_INT(s.purchases, 2);
	CHECK_EQ_INT(s.gaps, 1);
	CHECK_NEAR(s.median_gap, 7, 1e-12);
	CHECK(!s.has_cv);			/* one gap: no dispersion */
	ups_free(t.t);
}

UNIT_TEST(intervals_single_and_empty)
{
	IvTimes		t;
	IvStats		s;

	iv_times_init(&t);
	iv_stats(&t, (double) DAY, false, &s);
	CHECK_EQ_INT(s.purchases, 0);
	iv_times_add(&t, -3 * DAY);	/* before the epoch */
	iv_stats(&t, (double) DAY, false, &s);
	CHECK_EQ_INT(s.purchases, 1);
	CHECK_EQ_INT(s.gaps, 0);
	CHECK_EQ_INT(s.first, -3 * DAY);
	CHECK(!s.has_cv);
	ups_free(t.t);
}

UNIT_TEST(intervals_half_days)
{
	/* gaps 0.5 and 1.5 days */
	IvTimes		t;
	IvStats		s;

	iv_times_init(&t);
	iv_times_add(&t, 0);
	iv_times_add(&t, DAY / 2);
	iv_times_add(&t, 2 * DAY);
	iv_stats(&t, (double) DAY, false, &s);
	CHECK_NEAR(s.median_gap, 1.0, 1e-12);
	CHECK_NEAR(s.sd_gap, sqrt(0.5), 1e-12);
	CHECK_NEAR(s.cv, sqrt(0.5), 1e-12);
	ups_free(t.t);
}

UNIT_TEST(intervals_median_even_odd)
{
	double		a[] = {3, 1, 2};
	double		b[] = {4, 1, 3, 2};

	CHECK_NEAR(iv_median(a, 3), 2, 0);
	CHECK_NEAR(iv_median(b, 4), 2.5, 0);
	CHECK(isnan(iv_median(a, 0)));
}

UNIT_TEST(intervals_decay)
{
	CHECK_NEAR(iv_decay(0, 30), 1, 0);
	CHECK_NEAR(iv_decay(-5, 30), 1, 0);
	CHECK_NEAR(iv_decay(30, 30), 0.5, 1e-15);
	CHECK_NEAR(iv_decay(90, 30), 0.125, 1e-15);
	CHECK_NEAR(iv_decay(10, 0), 0, 0);
}

UNIT_TEST(intervals_serialize_roundtrip_and_combine)
{
	IvTimes		a, b, c;
	IvStats		s;
	char		buf[256];
	size_t		size;

	iv_times_init(&a);
	iv_times_init(&b);
	iv_times_add(&a, 20 * DAY);
	iv_times_add(&a, 0);
	iv_times_add(&b, 10 * DAY);
	iv_times_append(&a, &b);
	size = iv_times_serialized_size(&a);
	CHECK(size <= sizeof buf);
	iv_times_serialize(&a, buf);
	CHECK(iv_times_deserialize(buf, size, &c) == NULL);
	CHECK_EQ_INT(c.n, 3);
	iv_stats(&c, (double) DAY, false, &s);
	CHECK_NEAR(s.median_gap, 10, 0);
	CHECK_NEAR(s.cv, 0, 0);
	ups_free(c.t);
	/* every truncation and a lying count are errors, never reads past the end */
	CHECK(iv_times_deserialize(buf, 3, &c) != NULL);
	CHECK(iv_times_deserialize(buf, size - 1, &c) != NULL);
	CHECK(iv_times_deserialize(buf, size + 8, &c) != NULL);
	{
		uint64_t	huge = UINT64_MAX / 4;

		memcpy(buf, &huge, sizeof huge);
		CHECK(iv_times_deserialize(buf, size, &c) != NULL);
	}
	ups_free(a.t);
	ups_free(b.t);
}
