/*
 * intervals.h
 *		Interval statistics of repeat purchases: how often one customer buys
 *		one product again.
 *
 * The input is the purchase times of one (customer, product), in any order
 * and in any integer unit (the SQL layer passes timestamptz microseconds).
 * Purchases at the same instant are one purchase (several lines of one
 * order).  From the sorted, distinct times come the gaps between
 * consecutive purchases and:
 *
 *	median gap	the typical interval, robust to one odd gap (a holiday, a
 *				stock-up) where the mean is not
 *	mean, sd	sample standard deviation (n - 1) of the gaps
 *	cv			sd / mean: regularity; defined from two gaps on
 *
 * IvTimes is the aggregate's transition state: two states combine by
 * concatenation, so parallel workers can each collect part of the lines.
 */
#ifndef INTERVALS_H
#define INTERVALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct IvTimes
{
	int64_t    *t;
	size_t		n;
	size_t		cap;
} IvTimes;

typedef struct IvStats
{
	int64_t		purchases;		/* distinct purchase instants */
	int64_t		first;
	int64_t		last;
	int64_t		gaps;			/* purchases - 1 */
	double		median_gap;		/* in days; valid when gaps >= 1 */
	double		mean_gap;		/* in days; valid when gaps >= 1 */
	double		sd_gap;			/* in days; valid when gaps >= 2 */
	double		cv;				/* valid when gaps >= 2 and mean_gap > 0 */
	bool		has_cv;
} IvStats;

extern void iv_times_init(IvTimes *times);
extern void iv_times_add(IvTimes *times, int64_t t);
extern void iv_times_append(IvTimes *dst, const IvTimes *src);

/* Flat form for passing partial states between parallel workers. */
extern size_t iv_times_serialized_size(const IvTimes *times);
extern void iv_times_serialize(const IvTimes *times, char *buf);
/* NULL on success, else what is wrong with the bytes (nothing allocated). */
extern const char *iv_times_deserialize(const char *buf, size_t len, IvTimes *times);

/*
 * Sorts the times in place, drops repeats and computes the statistics;
 * units_per_day converts the time unit into days.  whole_days rounds every
 * gap to whole days: for times that are days of a zone with daylight saving
 * time (midnights an hour apart in absolute time across a change, so that
 * March 1 to April 1 in Berlin is 30.958 days, not 31).  A state with no
 * times gives purchases = 0.
 */
extern void iv_stats(IvTimes *times, double units_per_day, bool whole_days, IvStats *out);

/* Median of n values (sorts them in place); NaN when n = 0. */
extern double iv_median(double *values, size_t n);

/* qsort comparator of doubles, ascending (no NaN reaches it) */
extern int	iv_cmp_double(const void *a, const void *b);

/* Weight of a purchase age_days old with the given half-life: 0.5^(age/h). */
extern double iv_decay(double age_days, double half_life_days);

#endif							/* INTERVALS_H */
