/*
 * test_stats.c
 *		Unit tests of the statistics and the assignment hash (src/core/stats.c).
 *
 * Reference values were computed with mpmath at 40 significant digits (the
 * regularized incomplete beta and gamma functions, and the normal cdf) and
 * agree with printed tables; the worked examples are textbook ones.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"
#include "unit.h"

#define TOL 1e-9

UNIT_TEST(stats_normal_tails_and_quantiles)
{
	CHECK_NEAR(ups_normal_cdf(1.96), 0.9750021048517795659, TOL);
	CHECK_NEAR(ups_normal_cdf(-1), 0.1586552539314570514, TOL);
	CHECK_NEAR(ups_normal_cdf(0), 0.5, TOL);
	/* far tails keep their relative precision */
	CHECK_NEAR(ups_normal_sf(5) / 2.866515718791939117e-07, 1, 1e-12);
	CHECK_NEAR(ups_normal_sf(8) / 6.220960574271784124e-16, 1, 1e-10);
	CHECK_NEAR(ups_normal_quantile(0.975), 1.959963984540054236, 1e-12);
	CHECK_NEAR(ups_normal_quantile(0.3), -0.5244005127080407840, 1e-12);
	CHECK_NEAR(ups_normal_quantile(1e-10), -6.361340902404056205, 1e-9);
	CHECK_NEAR(ups_normal_quantile(0.5), 0, 1e-15);
	CHECK(isnan(ups_normal_quantile(0)));
	CHECK(isnan(ups_normal_quantile(1)));
	CHECK(isnan(ups_normal_quantile(-0.5)));
}

UNIT_TEST(stats_incomplete_beta_and_gamma)
{
	/* I_0.4(2,3) = 1 - sum_{j<2} C(4,j) .4^j .6^(4-j) = 0.5248 exactly */
	CHECK_NEAR(ups_incbeta(2, 3, 0.4), 0.5248, 1e-12);
	/* I_x(1/2,1/2) = (2/pi) asin(sqrt(x)) */
	CHECK_NEAR(ups_incbeta(0.5, 0.5, 0.1), 2 / 3.14159265358979323846 * asin(sqrt(0.1)), 1e-12);
	CHECK_NEAR(ups_incbeta(0.5, 0.5, 0.1), 0.2048327646991334516, 1e-12);
	CHECK_NEAR(ups_incbeta(3, 4, 0), 0, 0);
	CHECK_NEAR(ups_incbeta(3, 4, 1), 1, 0);
	CHECK(isnan(ups_incbeta(0, 1, 0.5)));
	/* Q(3, 2) = e^-2 (1 + 2 + 2) */
	CHECK_NEAR(ups_gamma_q(3, 2), 5 * exp(-2.0), 1e-12);
	CHECK_NEAR(ups_gamma_q(3, 2), 0.6766764161830634595, 1e-12);
}

UNIT_TEST(stats_student_t)
{
	CHECK_NEAR(ups_t_cdf(2, 10), 0.9633059826146298172, TOL);
	/* the table value t(0.975, 10) = 2.228 */
	CHECK_NEAR(ups_t_sf(2.228, 10), 0.02500588590855569127, TOL);
	CHECK_NEAR(ups_t_sf(10, 3), 0.001064199529207075029, TOL);
	CHECK_NEAR(ups_t_cdf(-1.5, 2.5), 0.1239182265431481306, TOL);
	/* Cauchy: P(T > 1) = 1/4 */
	CHECK_NEAR(ups_t_sf(1, 1), 0.25, 1e-12);
	CHECK_NEAR(ups_t_sf(0, 7), 0.5, 1e-15);
	CHECK_NEAR(ups_t_quantile(0.975, 10), 2.228138851986274748, 1e-9);
	CHECK_NEAR(ups_t_quantile(0.975, 1), 12.70620473617470465, 1e-8);
	CHECK_NEAR(ups_t_quantile(0.975, 30.5), 2.040869445186320640, 1e-9);
	CHECK_NEAR(ups_t_quantile(0.005, 4), -4.604094871349993225, 1e-9);
	/* huge df tends to the normal */
	CHECK_NEAR(ups_t_quantile(0.975, 1e7), 1.959963984540054236, 1e-6);
	/*
	 * and keeps to it (relative errors against mpmath, 50 digits): from df
	 * 1e13 it lost every digit (0.282 at 1e15, 2.5e-10 at 1e16), and the
	 * continued fraction loses digits as df grows (1e-9 at 1e8), the
	 * normal approximation beyond gains them
	 */
	CHECK_NEAR(ups_t_cdf(-2.234, 200) / 0.013295129326585699692, 1, 1e-13);
	CHECK_NEAR(ups_t_cdf(-2.234, 1e6) / 0.012741646604924824365, 1, 1e-10);
	CHECK_NEAR(ups_t_cdf(-2.234, 1e8) / 0.012741537631225501943, 1, 1e-8);
	/*
	 * on either side of the switch to the normal (T_NORMAL_DF), where the
	 * continued fraction is at its worst (README: below 1e-8) and the
	 * normal approximation at its worst (below 3e-10, at |t| 20)
	 */
	CHECK_NEAR(ups_t_cdf(-1.75, 9e7) / 0.040059158567644350658, 1, 1e-8);
	CHECK_NEAR(ups_t_cdf(-1.84, 98800000) / 0.032884120158041838986, 1, 1e-8);
	CHECK_NEAR(ups_t_cdf(-1.75, 100000001) / 0.040059158397261609262, 1, 3e-10);
	CHECK_NEAR(ups_t_cdf(-20, 100000001) / 2.754731288317822852e-89, 1, 3e-10);
	CHECK_NEAR(ups_t_cdf(-2.234, 1e9) / 0.012741536640556682517, 1, 1e-14);
	CHECK_NEAR(ups_t_cdf(-2.234, 1e12) / 0.012741536530592444866, 1, 1e-14);
	CHECK_NEAR(ups_t_cdf(-2.234, 1e13) / 0.012741536530493377985, 1, 1e-14);
	CHECK_NEAR(ups_t_cdf(-2.234, 1e15) / 0.012741536530482480628, 1, 1e-14);
	CHECK_NEAR(ups_t_cdf(-2.234, 1e16) / 0.012741536530482381562, 1, 1e-14);
	CHECK_NEAR(ups_t_cdf(-2.234, 1e18) / 0.012741536530482370664, 1, 1e-14);
	CHECK_NEAR(ups_t_cdf(-2.234, 1e300) / 0.012741536530482370554, 1, 1e-14);
	CHECK_NEAR(ups_t_cdf(-8, 1e9) / 6.2209671422273817033e-16, 1, 1e-12);
	CHECK_NEAR(ups_t_sf(1e200, 1e9), 0, 0);
	CHECK_NEAR(ups_t_cdf(1e200, 1e9), 1, 0);
	CHECK_NEAR(ups_t_sf(-INFINITY, 1e9), 1, 0);
	CHECK(isnan(ups_t_sf(1, 0)));
	CHECK(isnan(ups_t_quantile(1, 5)));
}

UNIT_TEST(stats_chi_square)
{
	/* the 5% critical value of chi-square with 1 df is 3.841458820694124 */
	CHECK_NEAR(ups_chisq_sf(3.841458820694124, 1), 0.05, 1e-12);
	CHECK_NEAR(ups_chisq_sf(10, 3), 0.01856613546304323330, TOL);
	CHECK_NEAR(ups_chisq_sf(100, 50), 3.454931382984863942e-05, 1e-13);
	CHECK_NEAR(ups_chisq_sf(0.5, 4), 0.9735009788392560853, TOL);
	CHECK_NEAR(ups_chisq_sf(0, 4), 1, 0);
}

/*
 * Welch's t-test, Wikipedia "Welch's t-test", example 1 (15 + 15 values):
 * t = 2.46, df = 25.0, p = 0.021 as printed; full precision from mpmath.
 */
UNIT_TEST(stats_welch_textbook_example)
{
	static const double a1[] = {27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1,
	21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4};
	static const double a2[] = {27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0,
	24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4};
	double		m1 = 0,
				m2 = 0,
				v1 = 0,
				v2 = 0;
	UpsTestResult r;
	int			i;

	for (i = 0; i < 15; i++)
		m1 += a1[i] / 15, m2 += a2[i] / 15;
	for (i = 0; i < 15; i++)
		v1 += (a1[i] - m1) * (a1[i] - m1) / 14, v2 += (a2[i] - m2) * (a2[i] - m2) / 14;
	CHECK_NEAR(m1, 20.82, 1e-12);
	CHECK_NEAR(v1, 7.867428571428571429, 1e-12);
	CHECK_EQ_INT(ups_welch_test(15, m1, v1, 15, m2, v2, 0.95, &r), 0);
	CHECK_NEAR(r.diff, 2.166666666666666667, 1e-12);
	CHECK_NEAR(r.stat, 2.455356398286005063, 1e-9);
	CHECK_NEAR(r.df, 24.98852929023141436, 1e-9);
	CHECK_NEAR(r.p_value, 0.02137800146286703249, 1e-9);
	CHECK_NEAR(r.ci_low, 0.3492370661924052294, 1e-8);
	CHECK_NEAR(r.ci_high, 3.984096267140928104, 1e-8);
	/* swapping the groups mirrors everything */
	CHECK_EQ_INT(ups_welch_test(15, m2, v2, 15, m1, v1, 0.95, &r), 0);
	CHECK_NEAR(r.stat, -2.455356398286005063, 1e-9);
	CHECK_NEAR(r.p_value, 0.02137800146286703249, 1e-9);
	/* bad input */
	CHECK_EQ_INT(ups_welch_test(1, 0, 1, 10, 0, 1, 0.95, &r), -1);
	CHECK_EQ_INT(ups_welch_test(10, 0, -1, 10, 0, 1, 0.95, &r), -1);
	CHECK_EQ_INT(ups_welch_test(10, 0, 1, 10, 0, 1, 1.0, &r), -1);
	/* no variance at all: undefined, not a crash */
	CHECK_EQ_INT(ups_welch_test(10, 5, 0, 10, 6, 0, 0.95, &r), 0);
	CHECK_NEAR(r.diff, 1, 0);
	CHECK(isnan(r.p_value));
	/*
	 * t, df and p do not depend on the unit of measurement: variances
	 * scaled to near 1e-300 and 1e307 (means by the square root) give the
	 * example's (df and p were NaN: the squares under- and overflowed)
	 */
	{
		static const double scales[] = {1e-300, 1e307};

		for (i = 0; i < 2; i++)
		{
			double		k = scales[i];

			CHECK_EQ_INT(ups_welch_test(15, m1 * sqrt(k), v1 * k, 15, m2 * sqrt(k), v2 * k, 0.95, &r), 0);
			CHECK_NEAR(r.stat, 2.455356398286005063, 1e-9);
			CHECK_NEAR(r.df, 24.98852929023141436, 1e-9);
			CHECK_NEAR(r.p_value, 0.02137800146286703249, 1e-9);
			CHECK_NEAR(r.ci_low / sqrt(k), 0.3492370661924052294, 1e-8);
		}
	}
}

/* 200/1000 converted in control, 250/1000 in the variant. */
UNIT_TEST(stats_two_proportion_example)
{
	UpsTestResult r;
	double		pp = 450.0 / 2000;

	CHECK_EQ_INT(ups_two_proportion_test(200, 1000, 250, 1000, 0.95, &r), 0);
	CHECK_NEAR(r.diff, 0.05, 1e-15);
	/* z by hand: 0.05 / sqrt(.225 * .775 * (2 / 1000)) */
	CHECK_NEAR(r.stat, 0.05 / sqrt(pp * (1 - pp) * 0.002), 1e-12);
	CHECK_NEAR(r.stat, 2.677397763008329543, 1e-9);
	CHECK_NEAR(r.p_value, 0.007419649261025674901, 1e-9);
	CHECK_NEAR(r.ci_low, 0.01346362168753984491, 1e-9);
	CHECK_NEAR(r.ci_high, 0.08653637831246015509, 1e-9);
	CHECK(isnan(r.df));
	/* identical all-zero groups: p = 1 */
	CHECK_EQ_INT(ups_two_proportion_test(0, 10, 0, 20, 0.95, &r), 0);
	CHECK_NEAR(r.p_value, 1, 0);
	CHECK_EQ_INT(ups_two_proportion_test(11, 10, 0, 20, 0.95, &r), -1);
	CHECK_EQ_INT(ups_two_proportion_test(1, 0, 0, 20, 0.95, &r), -1);
	CHECK_EQ_INT(ups_two_proportion_test(-1, 10, 0, 20, 0.95, &r), -1);
}

UNIT_TEST(stats_sample_ratio_mismatch)
{
	int64_t		o1[] = {5050, 4950},
				o2[] = {1020, 980, 2100},
				o3[] = {5200, 4800},
				o4[] = {10, 3},
				o5[] = {1000, 850, 0},
				o6[] = {40, 0};
	double		w11[] = {1, 1},
				w110[] = {1, 1, 0},
				w112[] = {1, 1, 2},
				w10[] = {1, 0},
				wneg[] = {1, -1},
				w00[] = {0, 0};
	double		chi2,
				df,
				p;

	CHECK_EQ_INT(ups_chisq_gof(o1, w11, 2, &chi2, &df, &p), 0);
	CHECK_NEAR(chi2, 1, 1e-12);
	CHECK_NEAR(df, 1, 0);
	CHECK_NEAR(p, 0.3173105078629141028, TOL);
	CHECK_EQ_INT(ups_chisq_gof(o2, w112, 3, &chi2, &df, &p), 0);
	CHECK_NEAR(chi2, 3.219512195121951220, 1e-12);
	CHECK_NEAR(p, 0.1999363730977287473, TOL);
	/* a 52/48 split of 10000 under 50/50: the mismatch the check must flag */
	CHECK_EQ_INT(ups_chisq_gof(o3, w11, 2, &chi2, &df, &p), 0);
	CHECK_NEAR(chi2, 16, 1e-12);
	CHECK_NEAR(p, 6.334248366623984251e-05, 1e-12);
	/* units in a variant of weight 0: infinitely unlikely */
	CHECK_EQ_INT(ups_chisq_gof(o4, w10, 2, &chi2, &df, &p), 0);
	CHECK(isinf(chi2));
	CHECK_NEAR(p, 0, 0);
	/*
	 * an empty variant of weight 0 (switched off) is no degree of freedom:
	 * 1000/850 under 1:1 is flagged with or without it (df 1, p < 0.001)
	 */
	CHECK_EQ_INT(ups_chisq_gof(o5, w110, 3, &chi2, &df, &p), 0);
	CHECK_NEAR(chi2, 11250.0 / 925.0, 1e-12);
	CHECK_NEAR(df, 1, 0);
	CHECK_NEAR(p, 4.876880960760173e-04, 1e-12);
	CHECK_EQ_INT(ups_chisq_gof(o5, w11, 2, &chi2, &df, &p), 0);
	CHECK_NEAR(p, 4.876880960760173e-04, 1e-12);
	/* one weighted variant and an empty switched-off one: nothing to mismatch */
	CHECK_EQ_INT(ups_chisq_gof(o6, w10, 2, &chi2, &df, &p), 0);
	CHECK_NEAR(chi2, 0, 0);
	CHECK_NEAR(df, 0, 0);
	CHECK_NEAR(p, 1, 0);
	CHECK_EQ_INT(ups_chisq_gof(o1, wneg, 2, &chi2, &df, &p), -1);
	CHECK_EQ_INT(ups_chisq_gof(o1, w00, 2, &chi2, &df, &p), -1);
	CHECK_EQ_INT(ups_chisq_gof(o1, w11, 1, &chi2, &df, &p), -1);
}

UNIT_TEST(stats_hash_is_pinned)
{
	/* FNV-1a 64 reference vectors (Fowler/Noll/Vo test suite) */
	CHECK(ups_fnv1a64("", 0) == UINT64_C(0xcbf29ce484222325));
	CHECK(ups_fnv1a64("a", 1) == UINT64_C(0xaf63dc4c8601ec8c));
	CHECK(ups_fnv1a64("foobar", 6) == UINT64_C(0x85944171f73967e8));
	/*
	 * Pinned outputs, computed independently (Python big integers): if these
	 * change, every running experiment would reshuffle its units.
	 */
	CHECK(ups_hash64("hello", 5) == UINT64_C(0xe9c562c0fdb23244));
	CHECK(ups_unit_hash("checkout_test", 13, "42", 2) == UINT64_C(0xea7a864a89801b03));
	CHECK(ups_unit_hash("checkout_test", 13, "42", 2) ==
		  ups_hash64("checkout_test\0" "42", 16));
	/* experiment "ab" + unit "c" differs from "a" + "bc" */
	CHECK(ups_unit_hash("ab", 2, "c", 1) != ups_unit_hash("a", 1, "bc", 2));
}

UNIT_TEST(stats_assignment_follows_weights)
{
	double		w[] = {50, 30, 0, 20};
	double		bad1[] = {0, 0},
				bad2[] = {1, -1};
	int64_t		count[4] = {0, 0, 0, 0},
				again = 0;
	char		unit[32];
	int			i;

	for (i = 0; i < 100000; i++)
	{
		int			len = snprintf(unit, sizeof unit, "%d", i);
		uint64_t	h = ups_unit_hash("exp", 3, unit, (size_t) len);
		int			b = ups_assign_bucket(h, w, 4);

		CHECK(b >= 0 && b < 4);
		if (b >= 0)
			count[b]++;
		again += ups_assign_bucket(ups_unit_hash("exp", 3, unit, (size_t) len), w, 4) == b;
	}
	CHECK_EQ_INT(again, 100000);
	CHECK_EQ_INT(count[2], 0);
	CHECK(llabs(count[0] - 50000) < 1000);
	CHECK(llabs(count[1] - 30000) < 1000);
	CHECK(llabs(count[3] - 20000) < 1000);
	/* u = 0.91593... for this unit: the last variant (cumulative .8 - 1) */
	CHECK_EQ_INT(ups_assign_bucket(UINT64_C(0xea7a864a89801b03), w, 4), 3);
	CHECK_EQ_INT(ups_assign_bucket(0, w, 4), 0);
	CHECK_EQ_INT(ups_assign_bucket(UINT64_MAX, w, 4), 3);
	CHECK_EQ_INT(ups_assign_bucket(0, bad1, 2), -1);
	CHECK_EQ_INT(ups_assign_bucket(0, bad2, 2), -1);
}

/* Absurd inputs give the limit or a refusal, never NaN or a wrapped sum. */
UNIT_TEST(stats_limits)
{
	UpsTestResult r;
	int64_t		obs[2] = {10, 12};
	double		big[2] = {1e308, 1e308};
	double		one[2] = {1, 1};
	double		chi2,
				df,
				p,
				p1;
	double		below,
				above;

	/* huge degrees of freedom: Wilson-Hilferty, finite, the median near x = df */
	CHECK_NEAR(ups_chisq_sf(1e308, 1e308), 0.5, 1e-6);
	CHECK_NEAR(ups_chisq_sf(1e12, 1e12), 0.5, 1e-3);
	/* continuous where the method changes: 3 standard deviations above the mean */
	below = ups_chisq_sf(1e7 + 3 * sqrt(2e7), 1e7);
	above = ups_chisq_sf(1.0000001e7 + 3 * sqrt(2.0000002e7), 1.0000001e7);
	CHECK_NEAR(below, above, 1e-5);
	CHECK_NEAR(below, 0.00135, 1e-4);
	CHECK_NEAR(ups_chisq_sf(INFINITY, 3), 0, 0);
	CHECK(isnan(ups_chisq_sf(NAN, 3)));
	/* trials beyond 2^53 are refused; at 2^53 the test is finite */
	CHECK_EQ_INT(ups_two_proportion_test(10, INT64_MAX, 20, INT64_MAX, 0.95, &r), -2);
	CHECK_EQ_INT(ups_two_proportion_test(10, UPS_EXACT_COUNT, 20, UPS_EXACT_COUNT, 0.95, &r), 0);
	CHECK(r.p_value > 0 && r.p_value < 1);
	/* weights near the largest double: the same test as equal weights */
	CHECK_EQ_INT(ups_chisq_gof(obs, one, 2, &chi2, &df, &p1), 0);
	CHECK_EQ_INT(ups_chisq_gof(obs, big, 2, &chi2, &df, &p), 0);
	CHECK_NEAR(p, p1, 1e-12);
}
