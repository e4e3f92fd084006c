-- Statistics behind experiment_results, from SQL: known values and textbook
-- examples (reference values: mpmath at 40 digits; printed tables agree).
SET extra_float_digits = 0;

-- normal, Student t and chi-square tails against known values
SELECT round(upsell.normal_cdf(1.96)::numeric, 12) AS phi_1_96,                 -- 0.975002104852
	   round(upsell.normal_cdf(-1)::numeric, 12) AS phi_minus_1,                 -- 0.158655253931
	   round(upsell.student_t_cdf(2, 10)::numeric, 12) AS t_2_df10,              -- 0.963305982615
	   round(upsell.student_t_cdf(-1.5, 2.5)::numeric, 12) AS t_df_fraction,     -- 0.123918226543
	   round(upsell.student_t_cdf(1, 1)::numeric, 12) AS cauchy_1,               -- 0.75
	   round(upsell.chi_square_sf(3.841458820694124, 1)::numeric, 12) AS chi2_5pct,  -- 0.05
	   round(upsell.chi_square_sf(10, 3)::numeric, 12) AS chi2_10_df3;           -- 0.018566135463

-- the table value t(0.975, 10) = 2.228: upper tail 0.025
SELECT round((1 - upsell.student_t_cdf(2.228138851986274748, 10))::numeric, 10) AS t_table_check;
-- a huge df tends to the normal (0.012741536530) and keeps to it; until 1.9
-- from df 1e13 no digit was right (0.282 at 1e15, 2.5e-10 at 1e16)
SELECT d AS df, round(upsell.student_t_cdf(-2.234, d)::numeric, 10) AS t_cdf    -- mpmath:
FROM unnest('{1e6, 1e8, 1e9, 1e12, 1e13, 1e15, 1e16, 1e18}'::float8[]) d;     -- 0.0127416466, 0.0127415376, 0.0127415366, then 0.0127415365
-- so Welch's test of 1e15 units a group: t = 2.236067979 (1.0000001 as float8),
-- p = 0.025347318592 (mpmath: 0.0253473185920; until 1.9: 0.372)
SELECT round(t::numeric, 9) AS t, round(p_value::numeric, 12) AS p
FROM upsell.welch_t_test(1e15, 1, 1, 1e15, 1.0000001, 1);

-- two-proportion z-test: 200/1000 converted in control, 250/1000 in the variant
SELECT round(diff::numeric, 10) AS diff, round(z::numeric, 10) AS z, round(p_value::numeric, 10) AS p,
	   round(ci_low::numeric, 10) AS ci_low, round(ci_high::numeric, 10) AS ci_high
FROM upsell.two_proportion_test(200, 1000, 250, 1000);
-- the same by hand in plain SQL: z = (p2 - p1) / sqrt(p(1-p)(1/n1 + 1/n2)), CI with the unpooled SE
SELECT abs(z - 0.05 / sqrt(0.225 * 0.775 * (2.0 / 1000))) < 1e-12 AS z_by_hand,
	   abs(ci_low - (0.05 - 1.959963984540054 * sqrt(0.2 * 0.8 / 1000 + 0.25 * 0.75 / 1000))) < 1e-12 AS ci_by_hand,
	   abs(p_value - 2 * (1 - upsell.normal_cdf(z))) < 1e-12 AS p_is_two_sided
FROM upsell.two_proportion_test(200, 1000, 250, 1000);
-- 90% interval is narrower
SELECT round(ci_low::numeric, 10) AS ci90_low, round(ci_high::numeric, 10) AS ci90_high
FROM upsell.two_proportion_test(200, 1000, 250, 1000, 0.90);

-- Welch's t-test, Wikipedia "Welch's t-test" example 1: t = 2.46, df = 25.0, p = 0.021
CREATE TEMP TABLE welch (grp int, x numeric);
INSERT INTO welch SELECT 1, unnest('{27.5,21.0,19.0,23.6,17.0,17.9,16.9,20.1,21.9,22.6,23.1,19.6,19.0,21.7,21.4}'::numeric[]);
INSERT INTO welch SELECT 2, unnest('{27.1,22.0,20.8,23.4,23.4,23.5,25.8,22.0,24.8,20.2,21.9,22.1,22.9,20.5,24.4}'::numeric[]);
WITH g AS (SELECT grp, count(*)::float8 AS n, avg(x)::float8 AS m, var_samp(x)::float8 AS v FROM welch GROUP BY grp),
	 r AS (SELECT w.* FROM g a, g b, upsell.welch_t_test(a.n, a.m, a.v, b.n, b.m, b.v) w WHERE a.grp = 1 AND b.grp = 2)
SELECT round(diff::numeric, 10) AS diff, round(t::numeric, 10) AS t, round(df::numeric, 10) AS df,
	   round(p_value::numeric, 10) AS p,                -- 0.0213780015
	   round(ci_low::numeric, 8) AS ci_low, round(ci_high::numeric, 8) AS ci_high   -- 0.34923707, 3.98409627
FROM r;
-- t and Welch-Satterthwaite df by hand in plain SQL
WITH g AS (SELECT grp, count(*)::float8 AS n, avg(x)::float8 AS m, var_samp(x)::float8 AS v FROM welch GROUP BY grp),
	 h AS (SELECT b.m - a.m AS d, a.v / a.n AS s1, b.v / b.n AS s2, a.n AS n1, b.n AS n2, a.*, b.m AS m2, b.v AS v2, b.n AS bn
		   FROM g a, g b WHERE a.grp = 1 AND b.grp = 2)
SELECT abs(w.t - h.d / sqrt(h.s1 + h.s2)) < 1e-12 AS t_by_hand,
	   abs(w.df - (h.s1 + h.s2) ^ 2 / (h.s1 ^ 2 / (h.n1 - 1) + h.s2 ^ 2 / (h.n2 - 1))) < 1e-9 AS df_by_hand,
	   abs(w.p_value - 2 * (1 - upsell.student_t_cdf(w.t, w.df))) < 1e-12 AS p_is_two_sided
FROM h, upsell.welch_t_test(h.n, h.m, h.v, h.bn, h.m2, h.v2) w;

-- sample-ratio mismatch: 5050/4950 is fine under 50/50, 5200/4800 is not
SELECT round(chi2::numeric, 10) AS chi2, df, round(p_value::numeric, 10) AS p FROM upsell.srm_test('{5050,4950}', '{1,1}');
SELECT round(chi2::numeric, 10) AS chi2, df, round(p_value::numeric, 12) AS p FROM upsell.srm_test('{5200,4800}', '{1,1}');
SELECT round(chi2::numeric, 10) AS chi2, df, round(p_value::numeric, 10) AS p FROM upsell.srm_test('{1020,980,2100}', '{1,1,2}');
SELECT chi2, p_value FROM upsell.srm_test('{10,3}', '{1,0}');   -- units in a variant of weight 0
-- an empty variant of weight 0 (switched off) is no degree of freedom: flagged as without it
SELECT round(chi2::numeric, 10) AS chi2, df, round(p_value::numeric, 10) AS p FROM upsell.srm_test('{1000,850,0}', '{1,1,0}');
SELECT round(chi2::numeric, 10) AS chi2, df, round(p_value::numeric, 10) AS p FROM upsell.srm_test('{1000,850}', '{1,1}');

-- degenerate but legal: no spread at all gives no test, not an error
SELECT diff, t, df, p_value FROM upsell.welch_t_test(10, 5, 0, 10, 6, 0);
SELECT diff, z, p_value FROM upsell.two_proportion_test(0, 10, 0, 20);
SELECT upsell.normal_cdf(NULL), (upsell.two_proportion_test(NULL, 1, 1, 1)).p_value;
-- variances at the ends of float8's range: the degrees of freedom do not
-- depend on the unit (equal groups of 10: 18), the p-value is that of t
-- (NULL df and p until 1.9: their squares under- and overflowed)
SELECT round(t::numeric, 10) AS t, df, round(p_value::numeric, 10) AS p
FROM upsell.welch_t_test(10, 0, 1e-300, 10, 1e-150, 1e-300);
SELECT round(t::numeric, 10) AS t, df, round(p_value::numeric, 10) AS p
FROM upsell.welch_t_test(10, 0, 1e308, 10, 1e154, 1e308);

-- bad input
SELECT * FROM upsell.two_proportion_test(11, 10, 0, 20);
SELECT * FROM upsell.two_proportion_test(-1, 10, 0, 20);
SELECT * FROM upsell.two_proportion_test(1, 0, 0, 20);
SELECT * FROM upsell.two_proportion_test(1, 10, 0, 20, 1);
SELECT * FROM upsell.welch_t_test(1, 0, 1, 10, 0, 1);
SELECT * FROM upsell.welch_t_test(10, 0, -1, 10, 0, 1);
SELECT * FROM upsell.welch_t_test(10, 0, 1, 10, 0, 1, 0);
SELECT * FROM upsell.srm_test('{1,2}', '{1,1,1}');
SELECT * FROM upsell.srm_test('{1,2}', '{0,0}');
SELECT * FROM upsell.srm_test('{1,2}', '{1,-1}');
SELECT * FROM upsell.srm_test('{1,-2}', '{1,1}');
SELECT * FROM upsell.srm_test('{1,NULL}', '{1,1}');
SELECT * FROM upsell.srm_test('{1}', '{1}');
SELECT * FROM upsell.srm_test('{{1,2}}', '{1,1}');
SELECT upsell.student_t_cdf(1, 0);
SELECT upsell.chi_square_sf(1, -2);
SELECT upsell.chi_square_sf(1, 'Infinity');
