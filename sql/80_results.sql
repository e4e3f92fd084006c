-- experiment_results on crafted orders with answers computed by hand.
-- Reference p-values and intervals: mpmath at 30 digits.
SET TimeZone = 'UTC';
SET extra_float_digits = 0;
CREATE SCHEMA exp_res;
CREATE TABLE exp_res.lines (order_id int, product_id int, customer_id int,
	ordered_at timestamptz, quantity int, unit_price numeric(10,2));
SELECT upsell.register_orders('exp_res.lines', 'order_id', 'product_id', customer_id => 'customer_id',
	ordered_at => 'ordered_at', quantity => 'quantity', unit_price => 'unit_price');

INSERT INTO upsell.experiments (experiment, started_at, conversion_window)
VALUES ('checkout', '2026-01-01', '7 days');
INSERT INTO upsell.experiment_variants (experiment, variant, weight, offer_types) VALUES
	('checkout', 'control', 1, '{}'), ('checkout', 'fbt', 1, '{complement}');

-- The first six customers (by id) that the hash puts in each variant; rank r
-- is first shown the offer at 2026-01-05 10:00 + r hours.
CREATE TABLE exp_res.units AS
SELECT variant, r, g AS customer_id, timestamptz '2026-01-05 10:00' + r * interval '1 hour' AS t0
FROM (SELECT g, upsell.assign('checkout', g::text) AS variant,
			 row_number() OVER (PARTITION BY upsell.assign('checkout', g::text) ORDER BY g) AS r
	  FROM generate_series(1, 100) g) s
WHERE r <= 6;
SELECT variant, count(*) AS units FROM exp_res.units GROUP BY variant ORDER BY variant;
SELECT upsell.record_exposure('checkout', customer_id::text, 'cart', NULL, t0) IS NOT NULL AS recorded
FROM exp_res.units ORDER BY variant, r LIMIT 1;
INSERT INTO upsell.exposures (experiment, unit_id, stage, shown_at)
SELECT 'checkout', customer_id::text, 'cart', t0 FROM exp_res.units WHERE NOT (variant = 'control' AND r = 1);
-- control r4 is shown again on day 10; its window still runs from the first exposure
INSERT INTO upsell.exposures (experiment, unit_id, shown_at)
SELECT 'checkout', customer_id::text, t0 + interval '10 days' FROM exp_res.units WHERE variant = 'control' AND r = 4;
-- shown before the experiment started: not a unit of it
INSERT INTO upsell.exposures (experiment, unit_id, shown_at) VALUES ('checkout', '1000', '2025-12-31');

-- control: r1 buys 30 + 10 after a day, r2 20 after two days, r3 60 after
-- eight days (outside the window), r4 50 on day 11 (after its second
-- exposure but outside the window of its first), r5 and r6 nothing.
-- fbt: r1 buys 30 + 2 x 10 after a day (it added the offered product 11
-- an hour after seeing it), r2 30, r3 70 after three days, r4 two orders
-- (30 and 10), r5 30 the day before it was first shown, r6 nothing.
INSERT INTO exp_res.lines
SELECT o.order_id, o.product_id, u.customer_id, u.t0 + o.after, o.quantity, o.unit_price
FROM exp_res.units u
JOIN (VALUES ('control', 1, 1, 10, interval '1 day', 1, 30.00), ('control', 1, 1, 11, '1 day', 1, 10.00),
			 ('control', 2, 2, 10, '2 days', 1, 20.00),
			 ('control', 3, 3, 10, '8 days', 1, 60.00),
			 ('control', 4, 4, 10, '11 days', 1, 50.00),
			 ('fbt', 1, 11, 10, '1 day', 1, 30.00), ('fbt', 1, 11, 11, '1 day', 2, 10.00),
			 ('fbt', 2, 12, 10, '1 day', 1, 30.00),
			 ('fbt', 3, 13, 12, '3 days', 1, 70.00),
			 ('fbt', 4, 14, 10, '1 day', 1, 30.00), ('fbt', 4, 15, 11, '2 days', 1, 10.00),
			 ('fbt', 5, 16, 10, '-1 day', 1, 30.00))
	 AS o(variant, r, order_id, product_id, after, quantity, unit_price)
	ON o.variant = u.variant AND o.r = u.r;
INSERT INTO upsell.offer_events (unit_id, offer_type, product_id, event, stage, experiment, occurred_at)
SELECT customer_id::text, 'complement', 11, e, 'cart', 'checkout', t0 + interval '1 hour'
FROM exp_res.units, (VALUES ('shown'), ('add')) ev(e) WHERE variant = 'fbt' AND r = 1;
-- an add of a product the unit then did not buy attaches nothing
INSERT INTO upsell.offer_events (unit_id, offer_type, product_id, event, occurred_at)
SELECT customer_id::text, 'complement', 99, 'add', t0 + interval '1 hour' FROM exp_res.units WHERE variant = 'fbt' AND r = 2;

-- By hand:
--   control: 6 units, 2 convert, 2 orders (40, 20): revenue 60, AOV 30,
--            revenue per visitor 60/6 = 10, items per order 3/2 = 1.5
--   fbt:     6 units, 4 convert, 5 orders (50, 30, 70, 30, 10): revenue 190,
--            AOV 38, revenue per visitor 190/6 = 31.67, items 7/5 = 1.4,
--            attach rate 1/5 (r1's order holds the added product 11)
--   conversion 4/6 - 2/6 = 0.3333, z = 0.3333 / sqrt(.5 * .5 * (2/6)) = 1.1547005384, p = 0.2482130790,
--            95% CI (unpooled) -0.2001012974 .. 0.8667679640
--   AOV: Welch on {40, 20} and {50, 30, 70, 30, 10}: diff 8, t = 8 / sqrt(200/2 + 520/5) = 0.5601120336,
--            df = 204^2 / (100^2/1 + 104^2/4) = 3.2758186398, p = 0.6114451722, CI -35.3641695 .. 51.3641695
--   RPV: Welch on {40, 20, 0, 0, 0, 0} and {50, 30, 70, 40, 0, 0}: diff 21.6667,
--            t = 1.6326711677, df = 8.1904800717, p = 0.1403025495, CI -8.8121520 .. 52.1454853
--   sample ratio: 6 and 6 under 1:1, chi-square 0, p = 1
SELECT variant, is_control, weight, units, expected_units, converted_units, orders,
	   round(conversion_rate::numeric, 4) AS conv, revenue, aov, revenue_per_visitor AS rpv,
	   items_per_order, attach_rate, srm_p_value, srm_warning
FROM upsell.experiment_results('checkout') ORDER BY variant;
SELECT variant, round(conversion_diff::numeric, 10) AS diff, round(conversion_rel_diff::numeric, 10) AS rel,
	   round(conversion_ci_low::numeric, 10) AS ci_low, round(conversion_ci_high::numeric, 10) AS ci_high,
	   round(conversion_p_value::numeric, 10) AS p
FROM upsell.experiment_results('checkout') ORDER BY variant;
SELECT variant, round(aov_diff::numeric, 10) AS diff, round(aov_rel_diff::numeric, 10) AS rel,
	   round(aov_ci_low::numeric, 7) AS ci_low, round(aov_ci_high::numeric, 7) AS ci_high,
	   round(aov_p_value::numeric, 10) AS p
FROM upsell.experiment_results('checkout') ORDER BY variant;
SELECT variant, round(rpv_diff::numeric, 10) AS diff, round(rpv_rel_diff::numeric, 10) AS rel,
	   round(rpv_ci_low::numeric, 7) AS ci_low, round(rpv_ci_high::numeric, 7) AS ci_high,
	   round(rpv_p_value::numeric, 10) AS p
FROM upsell.experiment_results('checkout') ORDER BY variant;

-- the same figures from a plain-SQL reading of the rules, independently
WITH u AS (SELECT DISTINCT ON (unit_id) unit_id::int AS customer_id, variant, shown_at
		   FROM upsell.exposures WHERE experiment = 'checkout' AND shown_at >= '2026-01-01'
		   ORDER BY unit_id, shown_at),
	 o AS (SELECT u.variant, l.customer_id, l.order_id, sum(l.quantity * l.unit_price) AS revenue
		   FROM exp_res.lines l JOIN u ON u.customer_id = l.customer_id
		   WHERE l.ordered_at >= u.shown_at AND l.ordered_at < u.shown_at + interval '7 days'
		   GROUP BY 1, 2, 3),
	 pu AS (SELECT u.variant, u.customer_id, coalesce(sum(o.revenue), 0) AS revenue
			FROM u LEFT JOIN o USING (customer_id) GROUP BY 1, 2),
	 ref AS (SELECT variant, (SELECT avg(revenue) FROM o WHERE o.variant = pu.variant) AS aov,
					avg(revenue) AS rpv, count(*) AS units FROM pu GROUP BY variant)
SELECT r.variant, round(r.aov, 2) = x.aov AS aov_agrees, round(r.rpv, 2) = x.revenue_per_visitor AS rpv_agrees,
	   r.units = x.units AS units_agree
FROM ref r JOIN upsell.experiment_results('checkout') x USING (variant) ORDER BY r.variant;
-- Welch's t and df by hand for AOV
SELECT abs(aov_diff / sqrt(200.0 / 2 + 520.0 / 5) - 0.560112033611203921) < 1e-12 AS t_by_hand,
	   abs(aov_p_value - 2 * (1 - upsell.student_t_cdf(8 / sqrt(204.0), 204.0 ^ 2 / (100.0 ^ 2 + 104.0 ^ 2 / 4)))) < 1e-12 AS p_by_hand
FROM upsell.experiment_results('checkout') WHERE variant = 'fbt';
-- a 90% interval is narrower, same p-value
SELECT round(conversion_ci_low::numeric, 6) AS ci90_low, round(conversion_ci_high::numeric, 6) AS ci90_high,
	   round(conversion_p_value::numeric, 10) AS p
FROM upsell.experiment_results('checkout', 0.90) WHERE variant = 'fbt';

-- a broken split: weights 1:1, but most units of one variant were never recorded
INSERT INTO upsell.experiments (experiment, started_at) VALUES ('skewed', '2026-01-01');
INSERT INTO upsell.experiment_variants (experiment, variant, weight, offer_types) VALUES
	('skewed', 'control', 1, '{}'), ('skewed', 'bundles', 1, '{bundle}');
INSERT INTO upsell.exposures (experiment, unit_id, shown_at)
SELECT 'skewed', g::text, '2026-01-02' FROM generate_series(1, 200) g
WHERE upsell.assign('skewed', g::text) = 'control' OR g <= 40;
SELECT variant, units, round(expected_units::numeric, 1) AS expected, srm_p_value < 0.001 AS tiny_p, srm_warning
FROM upsell.experiment_results('skewed') ORDER BY variant;
SELECT round(p_value::numeric, 12) = round((SELECT srm_p_value FROM upsell.experiment_results('skewed') LIMIT 1)::numeric, 12) AS srm_as_srm_test
FROM upsell.srm_test(ARRAY(SELECT units FROM upsell.experiment_results('skewed') ORDER BY variant COLLATE "C"),
					 '{1,1}');

-- no exposures yet: zero units, no tests, no warning
INSERT INTO upsell.experiments (experiment) VALUES ('fresh');
INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('fresh', 'control', 1), ('fresh', 'b', 1);
SELECT variant, units, converted_units, orders, conversion_rate, revenue, aov, revenue_per_visitor,
	   conversion_p_value, srm_p_value, srm_warning
FROM upsell.experiment_results('fresh') ORDER BY variant;

-- a unit's window ends by the shop's clock (the zone of its registration,
-- UTC here), whoever reads: unit 5000, first shown 2026-03-05 12:00 UTC,
-- orders 167.5 hours later, within 7 days of UTC; a session in New York
-- (where 2026-03-08 has 23 hours) counted it out until 1.9
INSERT INTO upsell.experiments (experiment, started_at) VALUES ('dst', '2026-03-01');
INSERT INTO upsell.experiment_variants (experiment, variant, weight) VALUES ('dst', 'control', 1), ('dst', 'b', 0);
INSERT INTO upsell.exposures (experiment, unit_id, shown_at) VALUES ('dst', '5000', '2026-03-05 12:00');
INSERT INTO exp_res.lines VALUES (5000, 10, 5000, '2026-03-12 11:30', 1, 10.00);
SET TimeZone = 'America/New_York';
SELECT variant, units, converted_units, revenue FROM upsell.experiment_results('dst') WHERE units > 0;
SET TimeZone = 'Asia/Tokyo';
SELECT variant, units, converted_units, revenue FROM upsell.experiment_results('dst') WHERE units > 0;
SET TimeZone = 'UTC';
SELECT variant, units, converted_units, revenue FROM upsell.experiment_results('dst') WHERE units > 0;
DELETE FROM exp_res.lines WHERE order_id = 5000;
DELETE FROM upsell.experiments WHERE experiment = 'dst';

-- bad input
SELECT * FROM upsell.experiment_results('nope');
SELECT * FROM upsell.experiment_results(NULL);
SELECT * FROM upsell.experiment_results('checkout', 1.5);
UPDATE upsell.experiments SET control = 'baseline' WHERE experiment = 'fresh';
SELECT * FROM upsell.experiment_results('fresh');

-- text customer ids: a unit id is reduced like the customer column, with upsell.order_key()
CREATE TABLE exp_res.text_lines (order_id text, product_id int, customer text, ordered_at timestamptz,
	unit_price numeric(10,2));
INSERT INTO exp_res.text_lines VALUES ('A-1', 10, 'alice@example.com', '2026-01-03', 25),
	('A-2', 10, 'bob@example.com', '2026-01-03', 35), ('A-3', 11, 'bob@example.com', '2026-01-20', 35);
SELECT upsell.register_orders('exp_res.text_lines', 'order_id', 'product_id', customer_id => 'customer',
	ordered_at => 'ordered_at', unit_price => 'unit_price');
SELECT upsell.unit_customer('alice@example.com') = upsell.order_key('alice@example.com') AS text_key;
UPDATE upsell.experiments SET control = 'control' WHERE experiment = 'fresh';
INSERT INTO upsell.exposures (experiment, unit_id, shown_at)
VALUES ('fresh', 'alice@example.com', '2026-01-02'), ('fresh', 'bob@example.com', '2026-01-02');
UPDATE upsell.experiments SET started_at = '2026-01-01' WHERE experiment = 'fresh';
SELECT variant, units, converted_units, orders, revenue
FROM upsell.experiment_results('fresh') ORDER BY variant;
SELECT upsell.assign('fresh', 'alice@example.com') AS alice, upsell.assign('fresh', 'bob@example.com') AS bob;

-- without a customer column there is nothing to convert
DELETE FROM upsell.order_source;
SELECT upsell.register_orders('exp_res.text_lines', 'order_id', 'product_id');
SELECT * FROM upsell.experiment_results('fresh');

UPDATE upsell.experiments SET ended_at = now();
DELETE FROM upsell.experiments;
DELETE FROM upsell.offer_events;
DELETE FROM upsell.order_source;
DROP SCHEMA exp_res CASCADE;
