-- Interval statistics, replenishment and subscriptions on the crafted coffee
-- shop (test/data/post_purchase.sql), whose answers are computed by hand in
-- that file's header.
\set VERBOSITY terse
\i test/data/post_purchase.sql

-- the aggregate alone: gaps 10, 12, 14, 100 days -> median 13, mean 34
SELECT (s).purchases, (s).first_at::date, (s).last_at::date, (s).median_gap_days, (s).mean_gap_days,
	   round((s).sd_gap_days::numeric, 6) AS sd, round((s).cv::numeric, 6) AS cv,
	   round((sqrt((24.0^2 + 22^2 + 20^2 + 66^2) / 3) / 34)::numeric, 6) AS cv_by_hand
FROM (SELECT upsell.purchase_interval_agg(d) AS s
	  FROM unnest('{2024-01-01,2024-01-11,2024-01-23,2024-02-06,2024-05-16}'::timestamptz[]) d) q;
-- repeats of one instant are one purchase; NULL and infinity are skipped; one gap has no CV
SELECT upsell.purchase_interval_agg(d)
FROM unnest(ARRAY['2024-01-01', '2024-01-01', NULL, 'infinity', '2024-01-08 12:00']::timestamptz[]) d;
SELECT upsell.purchase_interval_agg(d) IS NULL AS no_times
FROM unnest(ARRAY[NULL, '-infinity']::timestamptz[]) d;
SELECT upsell.purchase_interval_agg(d) IS NULL AS empty FROM unnest('{}'::timestamptz[]) d;
-- a parallel plan gives the same answer (combine, serialize, deserialize)
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
CREATE TABLE pp.many AS
SELECT (i % 7) AS g, timestamptz '2024-01-01' + (i * 3 + (i % 5)) * interval '1 day' AS t
FROM generate_series(1, 20000) i;
ANALYZE pp.many;
EXPLAIN (COSTS OFF) SELECT upsell.purchase_interval_agg(t) FROM pp.many;
SELECT (upsell.purchase_interval_agg(t)).* FROM pp.many;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
SELECT (upsell.purchase_interval_agg(t)).*, count(DISTINCT t) AS distinct_times FROM pp.many;

-- decay: 0.5 ^ (age / half-life)
SELECT upsell._decay(0, 90), upsell._decay(-3, 90), upsell._decay(90, 90), upsell._decay(270, 90);
SELECT upsell._decay(10, 0);

-- the per-customer model: matches the header of test/data/post_purchase.sql
SELECT customer_id, product_id, purchases, first_at::date, last_at::date, median_gap_days AS median,
	   round(cv::numeric, 4) AS cv, quantity, spend, population_interval_days AS population,
	   interval_days, next_due::date, round(confidence::numeric, 4) AS confidence
FROM upsell.purchase_interval_model ORDER BY product_id, customer_id;
-- hand-computed: CV of 101 (20, 40) and 103 (30, 45, 42); confidences
SELECT round((sqrt(200.0) / 30)::numeric, 4) AS cv_101, round((sqrt(63.0) / 39)::numeric, 4) AS cv_103,
	   round((2.0 / 3 / (1 + sqrt(200.0) / 30))::numeric, 4) AS conf_101, 0.5 * 3 / 5 AS conf_102;
-- the same figures from a plain-SQL reference
WITH buys AS (
	SELECT DISTINCT customer_id, product_id, ordered_at::timestamptz AS t
	FROM pp.orders WHERE customer_id IS NOT NULL AND quantity > 0),
gaps AS (
	SELECT customer_id, product_id,
		   extract(epoch FROM t - lag(t) OVER (PARTITION BY customer_id, product_id ORDER BY t)) / 86400 AS gap
	FROM buys),
ref AS (
	SELECT customer_id, product_id, count(*) AS purchases,
		   percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS median,
		   stddev_samp(gap) / avg(gap) AS cv
	FROM gaps GROUP BY customer_id, product_id)
SELECT count(*) AS rows, count(*) FILTER (WHERE r.purchases = m.purchases
			AND r.median IS NOT DISTINCT FROM m.median_gap_days
			AND round(r.cv::numeric, 9) IS NOT DISTINCT FROM round(m.cv::numeric, 9)) AS agree
FROM ref r FULL JOIN upsell.purchase_interval_model m USING (customer_id, product_id);

-- the per-product model
SELECT product_id, customers, repeat_customers, repeat_share, regular_customers,
	   population_interval_days, repeats_consumable
FROM upsell.product_interval_model ORDER BY product_id;
-- shop repeat share: 4 of 16 customer-product pairs; coffee 3/5 >= 0.125: consumable;
-- filters 1/1 but only one repeat buyer: not
SELECT sum(repeat_customers)::float8 / sum(customers) AS shop_repeat_share FROM upsell.product_interval_model;

-- replenishment: due in [as_of, as_of + within)
SELECT * FROM upsell.replenishment_due('2024-04-25');
SELECT * FROM upsell.replenishment_due('2024-04-30', '1 day');
SELECT * FROM upsell.replenishment_due('2024-04-29', '1 day');
-- the shop's days (of its registered zone, UTC here), whoever asks: a
-- session in Honolulu finds customer 100 due on Apr 30 too (until 1.8 its
-- own day, which began ten hours later: nobody)
SET TimeZone = 'Pacific/Honolulu';
SELECT customer_id, product_id, next_due AT TIME ZONE 'UTC' AS next_due_utc
FROM upsell.replenishment_due('2024-04-30', '1 day');
SET TimeZone = 'UTC';
SELECT * FROM upsell.replenishment_due('2024-03-01', '14 days');
SELECT customer_id, product_id, next_due::date, interval_source
FROM upsell.replenishment_due('2024-01-01', '365 days') ORDER BY next_due, customer_id;

-- merchant overrides: filters by product, then coffee made durable by category
-- while one product rule keeps it consumable
SELECT upsell.is_consumable(2) AS filters_by_data, upsell.is_consumable(1) AS coffee_by_data,
	   upsell.is_consumable(12345) AS unknown, upsell.is_consumable(NULL) AS null_id;
INSERT INTO upsell.consumables (product_id, consumable) VALUES (2, true);
SELECT upsell.is_consumable(2) AS filters_by_rule;
SELECT customer_id, product_id, next_due::date FROM upsell.replenishment_due('2024-05-05', '7 days');
INSERT INTO upsell.consumables (category, consumable) VALUES ('coffee', false);
SELECT upsell.is_consumable(1) AS coffee, upsell.is_consumable(2) AS filters;
SELECT count(*) AS coffee_due FROM upsell.replenishment_due('2024-01-01', '365 days') WHERE product_id = 1;
DELETE FROM upsell.consumables;
-- out of stock and excluded products are not reminded
UPDATE pp.products SET stock = 0 WHERE id = 1;
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;
SELECT count(*) AS while_out_of_stock FROM upsell.replenishment_due('2024-01-01', '365 days');
UPDATE pp.products SET stock = 50 WHERE id = 1;
INSERT INTO upsell.exclusions (product_id) VALUES (1);
SELECT count(*) AS while_excluded FROM upsell.replenishment_due('2024-01-01', '365 days');
DELETE FROM upsell.exclusions;
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;

-- subscriptions: 3+ purchases, CV below the threshold; revenue = 365.25 / interval x spend per purchase
SELECT * FROM upsell.subscription_candidates();
SELECT customer_id, cv < 0.3 FROM upsell.subscription_candidates(3, 0.3);
SELECT customer_id FROM upsell.subscription_candidates(4, 0.5);
SELECT round(365.25 / 30 * 90 / 4, 2) AS rev_100, round(365.25 / 30 * 30 / 3, 2) AS rev_101,
	   round(365.25 / 42 * 40 / 4, 2) AS rev_103;
SELECT * FROM upsell.subscription_products(2);

-- a line without a quantity is a sale of one in the histories too, as in
-- every other model (order_lines.sold): the espresso machine customer 107
-- bought is owned (not offered again), and an incremental refresh finds
-- customer 108's line the same way
INSERT INTO pp.orders VALUES (18, 107, 3, '2024-05-02', NULL, 300), (18, 107, 5, '2024-05-02', NULL, 40);
SET client_min_messages = warning;
CALL upsell.refresh();
INSERT INTO pp.orders VALUES (19, 108, 3, '2024-05-03', NULL, 300);
CALL upsell.refresh(incremental => true);
RESET client_min_messages;
SELECT mode FROM upsell.source_state;
SELECT customer_id, product_id, purchases, quantity, spend
FROM upsell.purchase_interval_model WHERE customer_id IN (107, 108) ORDER BY 1, 2;
SELECT product_id, customers FROM upsell.product_interval_model WHERE product_id IN (3, 5) ORDER BY 1;
SELECT order_key, items FROM upsell.order_model WHERE order_key IN (18, 19) ORDER BY 1;
SELECT count(*) FILTER (WHERE product_id IN (3, 5)) AS owned_offered, count(*) AS offers
FROM upsell.recommend_for_customer(107, 4, at => '2024-05-03');
DELETE FROM pp.orders WHERE order_id IN (18, 19);

-- a product's spend is known only when every purchase of it has a price:
-- customer 109's four monthly bags of coffee, two paid 12.00 and two
-- without a unit_price, are priced at the catalog's 10.00 (until 1.8 the
-- 24.00 of the two was spread over all four, half the revenue: 73.05)
INSERT INTO pp.orders SELECT 20 + i, 109, 1, date '2024-01-01' + 30 * i, 1, CASE WHEN i < 2 THEN 12 END
FROM generate_series(0, 3) i;
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;
SELECT customer_id, quantity, spend FROM upsell.purchase_interval_model WHERE customer_id = 109;
SELECT customer_id, expected_yearly_revenue, round(365.25 / 30 * 10, 2) AS by_hand
FROM upsell.subscription_candidates() WHERE customer_id = 109;
DELETE FROM pp.orders WHERE order_id BETWEEN 20 AND 23;
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;

-- bad input
SELECT * FROM upsell.replenishment_due(NULL::date);
SELECT * FROM upsell.replenishment_due('2024-01-01', interval '-1 day');
SELECT * FROM upsell.replenishment_due('2024-01-01'::date, tenant_id => 7);
SELECT * FROM upsell.subscription_candidates(2);
SELECT * FROM upsell.subscription_candidates(3, -0.1);
SELECT * FROM upsell.subscription_candidates(3, 'NaN'::float8);
SELECT * FROM upsell.subscription_candidates(NULL::int);
SELECT * FROM upsell.subscription_products(0);
INSERT INTO upsell.consumables (product_id, category, consumable) VALUES (1, 'coffee', true);
INSERT INTO upsell.consumables (consumable) VALUES (true);
SELECT upsell.purchase_interval_agg(x) FROM (VALUES ('a')) v(x);

\i test/data/post_purchase_teardown.sql
DROP SCHEMA pp CASCADE;
SELECT extname FROM pg_extension WHERE extname = 'upsell';
