/*
 * stats.c
 *		Distribution tails, A/B tests and the assignment hash (see stats.h).
 *
 * The tails follow the classic formulations (Numerical Recipes, 3rd ed.,
 * sections 6.2 and 6.4; Abramowitz and Stegun 26.5 and 26.7): the Student t
 * tail is half the regularized incomplete beta I_x(df/2, 1/2) at
 * x = df / (df + t^2), evaluated by its continued fraction (modified Lentz);
 * the chi-square tail is the regularized upper incomplete gamma
 * Q(k/2, x/2), by its series or its continued fraction.  Both pass 1 - x
 * computed without cancellation so that small p-values keep their relative
 * precision.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "idmap.h"
#include "stats.h"

#define UPS_SQRT2	1.41421356237309504880
#define UPS_SQRT2PI	2.50662827463100050242

#define CF_EPS		1e-16
#define CF_TINY		1e-300
#define CF_MAXIT	200000

double
ups_normal_cdf(double x)
{
	return 0.5 * erfc(-x / UPS_SQRT2);
}

double
ups_normal_sf(double x)
{
	return 0.5 * erfc(x / UPS_SQRT2);
}

/*
 * Acklam's rational approximation (relative error 1.15e-9), then one step
 * of Halley's method on erfc, which brings it to full double precision.
 */
double
ups_normal_quantile(double p)
{
	static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02,
		-2.759285104469687e+02, 1.383577518672690e+02,
	-3.066479806614716e+01, 2.506628277459239e+00};
	static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02,
		-1.556989798598866e+02, 6.680131188771972e+01,
	-1.328068155288572e+01};
	static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01,
		-2.400758277161838e+00, -2.549732539343734e+00,
	4.374664141464968e+00, 2.938163982698783e+00};
	static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01,
	2.445134137142996e+00, 3.754408661907416e+00};
	const double plow = 0.02425;
	double		q,
				r,
				x,
				e,
				u;

	if (!(p > 0.0 && p < 1.0))
		return NAN;
	if (p < plow)
	{
		q = sqrt(-2 * log(p));
		x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
			((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
	}
	else if (p <= 1 - plow)
	{
		q = p - 0.5;
		r = q * q;
		x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
			(((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
	}
	else
	{
		q = sqrt(-2 * log(1 - p));
		x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
			((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
	}
	/* refine; for the upper half work on the tail to keep precision */
	if (p > 0.5)
		e = (1 - p) - ups_normal_sf(x);
	else
		e = ups_normal_cdf(x) - p;
	u = e * UPS_SQRT2PI * exp(x * x / 2);
	x = x - u / (1 + x * u / 2);
	return x;
}

/* Continued fraction of the incomplete beta (NR 6.4), for x < (a+1)/(a+b+2). */
static double
betacf(double a, double b, double x)
{
	double		qab = a + b,
				qap = a + 1,
				qam = a - 1,
				c = 1,
				d = 1 - qab * x / qap,
				h;
	int			m;

	if (fabs(d) < CF_TINY)
		d = CF_TINY;
	d = 1 / d;
	h = d;
	for (m = 1; m <= CF_MAXIT; m++)
	{
		int			m2 = 2 * m;
		double		aa = m * (b - m) * x / ((qam + m2) * (a + m2)),
					del;

		d = 1 + aa * d;
		if (fabs(d) < CF_TINY)
			d = CF_TINY;
		c = 1 + aa / c;
		if (fabs(c) < CF_TINY)
			c = CF_TINY;
		d = 1 / d;
		h *= d * c;
		aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
		d = 1 + aa * d;
		if (fabs(d) < CF_TINY)
			d = CF_TINY;
		c = 1 + aa / c;
		if (fabs(c) < CF_TINY)
			c = CF_TINY;
		d = 1 / d;
		del = d * c;
		h *= del;
		if (fabs(del - 1) < CF_EPS)
			break;
	}
	return h;
}

/*
 * log Gamma(a + 1/2) - log Gamma(a) for a >= 50 by its asymptotic series
 * (error below 1e-18 there).  The difference of the two lgamma() values
 * loses everything for the a = df / 2 of a huge t test: lgamma(5e14) is
 * 1.7e16, whose last bit is worth 2 or 4, so student_t_cdf(-2.234, 1e16)
 * came out 2.5e-10 instead of 0.0127.
 */
static double
lgamma_half_ratio(double a)
{
	double		r = 1 / (a * a);

	return 0.5 * log(a) - 1 / (8 * a) +
		(1.0 / 192 - (1.0 / 640 - 17.0 / 14336 * r) * r) * r / a;
}

/* log B(a, b), without the cancellation above when one of a, b is 1/2 */
static double
log_beta(double a, double b)
{
	static const double log_sqrt_pi = 0.57236494292470008707;	/* lgamma(1/2) */

	if (b == 0.5 && a >= 50)
		return log_sqrt_pi - lgamma_half_ratio(a);
	if (a == 0.5 && b >= 50)
		return log_sqrt_pi - lgamma_half_ratio(b);
	return lgamma(a) + lgamma(b) - lgamma(a + b);
}

/*
 * I_x(a, b) with y = 1 - x given separately (no cancellation near x = 1).
 * The logs of x and y near 1 come from the other one (log1p), exactly: a
 * huge a multiplies the error of log(x) of an x rounded near 1.
 */
static double
incbeta_xy(double a, double b, double x, double y)
{
	double		lbt;

	if (x <= 0)
		return 0;
	if (y <= 0)
		return 1;
	lbt = a * (x > 0.5 ? log1p(-y) : log(x)) + b * (y > 0.5 ? log1p(-x) : log(y)) - log_beta(a, b);
	if (x < (a + 1) / (a + b + 2))
		return exp(lbt) * betacf(a, b, x) / a;
	return 1 - exp(lbt) * betacf(b, a, y) / b;
}

double
ups_incbeta(double a, double b, double x)
{
	if (!(a > 0 && b > 0) || isnan(x))
		return NAN;
	return incbeta_xy(a, b, x, 1 - x);
}

/*
 * Beyond this df the incomplete beta's continued fraction, which works on
 * x = df / (df + t^2) rounded near 1, loses digits as df grows (relative
 * error below 1e-9 up to df 1e7, up to 9.3e-9 just below 1e8, 1e-2 at
 * 1e15), while the normal approximation below gains them (at df 1e8:
 * 3e-10 for t = -20, 1e-12 for t = -8, 6e-16 for t = -2.234; below 5e-12
 * from 1e9), both against mpmath.  A lower switch does not help: the
 * normal's error grows as t^6 / df^2 (2.7e-8 at df 1e7, t = -20), so no
 * df keeps both below 2e-9 for |t| up to 20.
 */
#define T_NORMAL_DF 1e8

/* Two-sided tail P(|T| > |t|) = I_{df/(df+t^2)}(df/2, 1/2). */
static double
t_two_sided(double t, double df)
{
	double		t2 = t * t;

	if (isinf(t))
		return 0;
	if (df > T_NORMAL_DF)
	{
		/*
		 * Abramowitz & Stegun 26.7.8, as R's pt() does for df > 4e5:
		 * P(T > t) = P(Z > t (1 - 1/(4 df)) / sqrt(1 + t^2 / (2 df))).
		 * hypot() for the root: t^2 overflows from 1e154.
		 */
		double		v = 1 / (4 * df);

		return 2 * ups_normal_sf(fabs(t) * (1 - v) / hypot(1, sqrt(2 * v) * t));
	}
	return incbeta_xy(df / 2, 0.5, df / (df + t2), t2 / (df + t2));
}

double
ups_t_sf(double t, double df)
{
	if (isnan(t) || !(df > 0))
		return NAN;
	if (t >= 0)
		return 0.5 * t_two_sided(t, df);
	return 1 - 0.5 * t_two_sided(t, df);
}

double
ups_t_cdf(double t, double df)
{
	if (isnan(t) || !(df > 0))
		return NAN;
	return ups_t_sf(-t, df);
}

/* Bracket around the normal quantile, then bisect on the tail to the last bit. */
double
ups_t_quantile(double p, double df)
{
	double		lo,
				hi,
				target;
	int			i,
				upper;

	if (!(p > 0 && p < 1) || !(df > 0))
		return NAN;
	if (p == 0.5)
		return 0;
	/* by symmetry work on the upper tail q = P(T > t), t > 0 */
	upper = p > 0.5;
	target = upper ? 1 - p : p;
	lo = 0;
	hi = fmax(1.0, -ups_normal_quantile(target));
	while (ups_t_sf(hi, df) > target && hi < 1e300)
		hi *= 2;
	for (i = 0; i < 2000 && hi - lo > 0; i++)
	{
		double		mid = lo + (hi - lo) / 2;

		if (mid <= lo || mid >= hi)
			break;
		if (ups_t_sf(mid, df) > target)
			lo = mid;
		else
			hi = mid;
	}
	return upper ? (lo + hi) / 2 : -(lo + hi) / 2;
}

/* Regularized upper incomplete gamma Q(a, x) (NR 6.2). */
double
ups_gamma_q(double a, double x)
{
	double		gln;

	if (!(a > 0) || isnan(x))
		return NAN;
	if (x <= 0)
		return 1;
	if (isinf(x))
		return 0;
	gln = lgamma(a);
	if (x < a + 1)
	{
		/* series for P, Q = 1 - P */
		double		ap = a,
					del = 1 / a,
					sum = del;
		int			n;

		for (n = 0; n < CF_MAXIT; n++)
		{
			ap += 1;
			del *= x / ap;
			sum += del;
			if (fabs(del) < fabs(sum) * CF_EPS)
				break;
		}
		return 1 - sum * exp(-x + a * log(x) - gln);
	}
	else
	{
		double		b = x + 1 - a,
					c = 1 / CF_TINY,
					d = 1 / b,
					h = d;
		int			i;

		for (i = 1; i <= CF_MAXIT; i++)
		{
			double		an = -i * (i - a),
						del;

			b += 2;
			d = an * d + b;
			if (fabs(d) < CF_TINY)
				d = CF_TINY;
			c = b + an / c;
			if (fabs(c) < CF_TINY)
				c = CF_TINY;
			d = 1 / d;
			del = d * c;
			h *= del;
			if (fabs(del - 1) < CF_EPS)
				break;
		}
		return exp(-x + a * log(x) - gln) * h;
	}
}

/*
 * Above this many degrees of freedom the series and continued fraction of
 * Q(a, x) neither converge nor stay finite (lgamma overflows near 1e305);
 * the Wilson-Hilferty normal approximation is then accurate to far better
 * than 1e-6.
 */
#define CHISQ_WH_DF 1e7

double
ups_chisq_sf(double x, double df)
{
	if (isnan(x) || !(df > 0))
		return NAN;
	if (x <= 0)
		return 1;
	if (isinf(x))
		return 0;
	if (df > CHISQ_WH_DF)
	{
		double		v = 2.0 / 9.0 / df;	/* > 0: df is finite (9 * df may not be) */
		double		z = (cbrt(x / df) - (1 - v)) / sqrt(v);

		return ups_normal_sf(z);
	}
	return ups_gamma_q(df / 2, x / 2);
}

int
ups_two_proportion_test(int64_t x1, int64_t n1, int64_t x2, int64_t n2,
						double confidence, UpsTestResult *r)
{
	double		p1,
				p2,
				pp,
				se0,
				se,
				zq;

	if (n1 < 1 || n2 < 1 || x1 < 0 || x2 < 0 || x1 > n1 || x2 > n2 ||
		!(confidence > 0 && confidence < 1))
		return -1;
	/* counts beyond 2^53 are not exact as doubles */
	if (n1 > UPS_EXACT_COUNT || n2 > UPS_EXACT_COUNT)
		return -2;
	p1 = (double) x1 / n1;
	p2 = (double) x2 / n2;
	/* in doubles: n1 + n2 may exceed int64 */
	pp = ((double) x1 + (double) x2) / ((double) n1 + (double) n2);
	se0 = sqrt(pp * (1 - pp) * (1.0 / n1 + 1.0 / n2));
	se = sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2);
	zq = ups_normal_quantile(1 - (1 - confidence) / 2);
	r->diff = p2 - p1;
	r->df = NAN;
	if (se0 > 0)
	{
		r->stat = r->diff / se0;
		r->p_value = 2 * ups_normal_sf(fabs(r->stat));
	}
	else
	{
		/* both 0% or both 100%: no evidence of a difference */
		r->stat = 0;
		r->p_value = 1;
	}
	r->ci_low = r->diff - zq * se;
	r->ci_high = r->diff + zq * se;
	return 0;
}

int
ups_welch_test(double n1, double mean1, double var1,
			   double n2, double mean2, double var2,
			   double confidence, UpsTestResult *r)
{
	double		s1,
				s2,
				se;

	if (!(n1 >= 2 && n2 >= 2) || !(var1 >= 0 && var2 >= 0) ||
		!isfinite(mean1) || !isfinite(mean2) || !(confidence > 0 && confidence < 1))
		return -1;
	s1 = var1 / n1;
	s2 = var2 / n2;
	se = sqrt(s1 + s2);
	r->diff = mean2 - mean1;
	if (!(se > 0))
	{
		r->stat = r->df = r->p_value = r->ci_low = r->ci_high = NAN;
		return 0;
	}
	r->stat = r->diff / se;
	/*
	 * Welch-Satterthwaite, (s1 + s2)^2 / (s1^2/(n1-1) + s2^2/(n2-1)), in
	 * the shares of s1 + s2: squared as they are, variances near 1e-300
	 * underflowed to 0/0 and near 1e308 overflowed to inf/inf (NaN, a NULL
	 * df and p-value).  A share is at most 1 and one is at least 1/2.
	 */
	{
		double		a = s1 / (s1 + s2),
					b = s2 / (s1 + s2);

		r->df = 1 / (a * a / (n1 - 1) + b * b / (n2 - 1));
	}
	r->p_value = t_two_sided(r->stat, r->df);
	{
		double		tq = ups_t_quantile(1 - (1 - confidence) / 2, r->df);

		r->ci_low = r->diff - tq * se;
		r->ci_high = r->diff + tq * se;
	}
	return 0;
}

int
ups_chisq_gof(const int64_t *observed, const double *weights, int k,
			  double *chi2, double *df, double *p_value)
{
	double		wsum = 0,
				n = 0,
				x = 0;
	int			i,
				free_cells = 0;

	double		wmax = 0;

	if (k < 2)
		return -1;
	for (i = 0; i < k; i++)
	{
		if (!(weights[i] >= 0) || !isfinite(weights[i]) || observed[i] < 0)
			return -1;
		if (weights[i] > wmax)
			wmax = weights[i];
		if (weights[i] > 0)
			free_cells++;
	}
	/* shares of the largest weight: the sum cannot overflow */
	for (i = 0; i < k; i++)
	{
		wsum += wmax > 0 ? weights[i] / wmax : 0;
		n += (double) observed[i];
	}
	if (!(wsum > 0))
		return -1;
	for (i = 0; i < k; i++)
	{
		double		e = n * (weights[i] / wmax) / wsum;

		if (e > 0)
			x += ((double) observed[i] - e) * ((double) observed[i] - e) / e;
		else if (observed[i] > 0)
			x = INFINITY;
	}
	/*
	 * A variant of weight 0 (switched off) expects no units whatever the
	 * split: its cell adds nothing to the statistic while empty and is not a
	 * degree of freedom.  Counting it would halve a 1:1 test's power to flag
	 * a broken split.  With a single weighted variant left nothing can
	 * mismatch but units in the switched-off ones.
	 */
	*chi2 = x;
	*df = free_cells - 1;
	if (isinf(x))
		*p_value = 0;
	else if (free_cells < 2)
		*p_value = 1;
	else
		*p_value = ups_chisq_sf(x, free_cells - 1);
	return 0;
}

#define FNV_OFFSET	UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME	UINT64_C(0x100000001b3)

static uint64_t
fnv1a_more(uint64_t h, const unsigned char *p, size_t len)
{
	size_t		i;

	for (i = 0; i < len; i++)
	{
		h ^= p[i];
		h *= FNV_PRIME;
	}
	return h;
}


uint64_t
ups_fnv1a64(const void *data, size_t len)
{
	return fnv1a_more(FNV_OFFSET, data, len);
}

/*
 * FNV-1a over the bytes, then MurmurHash3's finalizer (ups_mix64).
 * Byte-at-a-time, so it does not depend on endianness, word size or
 * alignment: the same value on every platform.
 */
uint64_t
ups_hash64(const void *data, size_t len)
{
	return ups_mix64(ups_fnv1a64(data, len));
}

/* Hash of experiment name, a zero byte, unit id: unambiguous concatenation. */
uint64_t
ups_unit_hash(const char *experiment, size_t elen, const char *unit, size_t ulen)
{
	static const unsigned char zero = 0;
	uint64_t	h = fnv1a_more(FNV_OFFSET, (const unsigned char *) experiment, elen);

	h = fnv1a_more(h, &zero, 1);
	h = fnv1a_more(h, (const unsigned char *) unit, ulen);
	return ups_mix64(h);
}

/*
 * The variant of a hash: the top 53 bits as a uniform u in [0, 1), then the
 * first variant whose cumulative weight share exceeds u.  Returns the
 * 0-based index, or -1 when the weights are unusable (none positive, or a
 * negative or non-finite one).
 */
int
ups_assign_bucket(uint64_t hash, const double *weights, int k)
{
	double		total = 0,
				target,
				cum = 0;
	int			i,
				last = -1;

	for (i = 0; i < k; i++)
	{
		if (!(weights[i] >= 0) || !isfinite(weights[i]))
			return -1;
		total += weights[i];
		if (weights[i] > 0)
			last = i;
	}
	if (last < 0)
		return -1;
	target = (double) (hash >> 11) * (1.0 / 9007199254740992.0) * total;
	for (i = 0; i < k; i++)
	{
		cum += weights[i];
		if (weights[i] > 0 && target < cum)
			return i;
	}
	return last;				/* rounding at the very top */
}
