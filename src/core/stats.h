/*
 * stats.h
 *		Statistics for A/B tests and the hash that assigns units to variants.
 *
 * Pure C, no server headers: distribution tails (normal, Student t via the
 * regularized incomplete beta, chi-square via the regularized incomplete
 * gamma), their quantiles, the two-proportion z-test, Welch's t-test, the
 * chi-square goodness-of-fit test used as the sample-ratio-mismatch check,
 * and a fixed 64-bit hash of bytes that is the same on every platform.
 */
#ifndef UPS_STATS_H
#define UPS_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Distributions */
extern double ups_normal_cdf(double x);
extern double ups_normal_sf(double x);	/* upper tail, 1 - cdf, accurate far out */
extern double ups_normal_quantile(double p);	/* NaN outside (0, 1) */
extern double ups_incbeta(double a, double b, double x);	/* regularized I_x(a, b) */
extern double ups_gamma_q(double a, double x);	/* regularized upper Q(a, x) */
extern double ups_t_cdf(double t, double df);
extern double ups_t_sf(double t, double df);
extern double ups_t_quantile(double p, double df);
extern double ups_chisq_sf(double x, double df);

/* Result of a test of "variant minus control" */
typedef struct UpsTestResult
{
	double		diff;			/* estimate of variant - control */
	double		stat;			/* z or t */
	double		df;				/* degrees of freedom (t only; NaN for z) */
	double		p_value;		/* two-sided */
	double		ci_low;			/* confidence interval of diff */
	double		ci_high;
} UpsTestResult;

/*
 * Two-proportion z-test: x1 of n1 (control) against x2 of n2 (variant).
 * The test statistic uses the pooled proportion (H0: p1 = p2); the
 * interval uses the unpooled standard error (Wald).  Returns 0 on success,
 * -1 when a count is out of range (n < 1, x < 0, x > n).
 */
/* Counts up to 2^53 are exact as doubles; the tests refuse larger ones (-2). */
#define UPS_EXACT_COUNT ((int64_t) 1 << 53)

extern int	ups_two_proportion_test(int64_t x1, int64_t n1, int64_t x2, int64_t n2,
									double confidence, UpsTestResult *r);

/*
 * Welch's t-test from summary statistics: sizes, means and sample variances
 * (n - 1 in the denominator) of control (1) and variant (2); degrees of
 * freedom by Welch-Satterthwaite.  Returns -1 when n < 2 or a variance is
 * negative; when both variances are 0 the statistic is undefined and the
 * result holds NaN except diff.
 */
extern int	ups_welch_test(double n1, double mean1, double var1,
						   double n2, double mean2, double var2,
						   double confidence, UpsTestResult *r);

/*
 * Chi-square goodness of fit of observed counts to weights (expected share
 * weight / sum of weights).  Categories of weight 0 must have 0 observations
 * (otherwise chi2 is infinite and p is 0).  Returns -1 on bad input (k < 2,
 * negative weight or count, weights summing to 0).
 */
extern int	ups_chisq_gof(const int64_t *observed, const double *weights, int k,
						  double *chi2, double *df, double *p_value);

/* Hashing and assignment */
extern uint64_t ups_fnv1a64(const void *data, size_t len);
extern uint64_t ups_hash64(const void *data, size_t len);
extern uint64_t ups_unit_hash(const char *experiment, size_t elen,
							  const char *unit, size_t ulen);
extern int	ups_assign_bucket(uint64_t hash, const double *weights, int k);

#endif							/* UPS_STATS_H */
