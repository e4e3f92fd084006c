-- Upgrade and downsell candidates on a small coffee shop whose answers are
-- worked out by hand (and by a plain-SQL reference of the scores).
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t40 CASCADE;
CREATE SCHEMA t40;
RESET client_min_messages;

CREATE TABLE t40.products (
	product_id int PRIMARY KEY, title text, category text, variant_group text,
	price numeric(10, 2), unit_size numeric, unit_name text, in_stock boolean);
INSERT INTO t40.products VALUES
	(1, 'house blend 500 g', 'coffee', 'house blend', 9.00, 500, 'g', true),
	(2, 'house blend 1 kg', 'coffee', 'house blend', 12.00, 1000, 'g', true),
	(3, 'house blend 2 kg', 'coffee', 'house blend', 20.00, 2000, 'g', true),
	(4, 'espresso 500 g', 'coffee', 'espresso', 10.00, 500, 'g', true),
	(5, 'espresso 1 kg', 'coffee', 'espresso', 13.50, 1000, 'g', false),
	(6, 'green tea', 'tea', NULL, 9.50, NULL, NULL, true),
	(7, 'house blend 250 g', 'coffee', 'house blend', 5.00, 250, 'g', true),
	(8, 'house blend decaf', 'coffee', 'house blend', NULL, 500, 'g', true),
	(9, 'house blend gift box', NULL, 'house blend', 11.00, NULL, NULL, true),
	(10, 'free sample', 'coffee', 'house blend', 0, NULL, NULL, true);

-- customers 100 and 101 moved from 1 up to 2, 104 from 1 to 9; 102 bought 1
-- and 4 in one order (no path); 103 bought 4, then 1; 105 bought 2 only
CREATE TABLE t40.lines (order_id int, customer_id int, ordered_at date, product_id int, quantity int);
INSERT INTO t40.lines VALUES
	(1, 100, '2024-01-01', 1, 1), (2, 100, '2024-01-05', 2, 1),
	(3, 101, '2024-01-01', 1, 2), (4, 101, '2024-01-03', 2, 1),
	(5, 102, '2024-01-02', 1, 1), (5, 102, '2024-01-02', 4, 1),
	(6, 103, '2024-01-01', 4, 1), (7, 103, '2024-01-02', 1, 1),
	(8, 104, '2024-01-01', 1, 1), (9, 104, '2024-01-02', 9, 1),
	(10, 105, '2024-01-04', 2, 1),
	(11, 106, '2024-01-04', 6, 1),
	(12, 107, '2024-01-04', 3, 0);		-- quantity 0: not a purchase

SELECT upsell.register_orders('t40.lines', 'order_id', 'product_id', customer_id => 'customer_id',
	ordered_at => 'ordered_at', quantity => 'quantity');
SELECT upsell.register_products('t40.products', 'product_id', price => 'price', category => 'category',
	variant_group => 'variant_group', in_stock => 'in_stock', title => 'title',
	unit_size => 'unit_size', unit_name => 'unit_name');
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;

-- products 8 (NULL price) and 10 (price 0) are left out, and the build says
-- so (the builder run again by hand, republishing the tenant, rolled back)
BEGIN;
SELECT upsell._build_upgrade_model(0, false) AS rows_built;
ROLLBACK;
-- stored as one row per product and kind (the candidates as arrays), read
-- as one row per candidate through the view upgrade_model
SELECT model, row_count FROM upsell.models WHERE model = 'upgrade_list_model';
SELECT count(*) AS candidates, count(DISTINCT (product_id, kind)) AS lists FROM upsell.upgrade_model;
SELECT count(*) AS rows_of_unpriced FROM upsell.upgrade_model WHERE product_id IN (8, 10) OR candidate_id IN (8, 10);

-- 9.00 -> at most 13.50: the group first (2 with two upgrade paths, then 9),
-- then the category (4); 5 is out of stock, 3 too dear, 6 another category
SELECT * FROM upsell.upgrade_candidates(1);
-- scores by hand: buyers of 1 = 5 customers, of 2 = 3, of 9 = 1, of 4 = 2;
-- buyers of the group = 6 (100..105), of the category coffee = 6
SELECT round(0.5 * 2 / 5 + 0.3 * 3 / 6.0 + 0.2 * 9 / 12.0, 6) AS score_2,
	   round(0.5 * 1 / 5 + 0.3 * 1 / 6.0 + 0.2 * 9 / 11.0, 6) AS score_9,
	   round(0.3 * 2 / 6.0 + 0.2 * 9 / 10.0, 6) AS score_4;

-- a wider ratio reaches 5 (13.50) but it is out of stock; 3 (2.22x) is
-- beyond what the model stores (2x)
SELECT rank, candidate_id, price_ratio FROM upsell.upgrade_candidates(1, 10, 3);
SELECT * FROM upsell.upgrade_candidates(2, 5, 2);
-- a product without a category reaches its group only
SELECT rank, candidate_id, price FROM upsell.upgrade_candidates(9, 5, 2);
-- tea has no alternative; the dearest has no upgrade
SELECT count(*) FROM upsell.upgrade_candidates(6, 5, 2);
SELECT count(*) FROM upsell.upgrade_candidates(3, 5, 2);

-- downsells of 2 (12.00), down to 6.00: group (1, 9), then category (4)
SELECT * FROM upsell.downsell_candidates(2);
SELECT round(0.5 * 9 / 12.0 + 0.5 * 5 / 6.0, 6) AS score_1,
	   round(0.5 * 11 / 12.0 + 0.5 * 1 / 6.0, 6) AS score_9,
	   round(0.5 * 10 / 12.0 + 0.5 * 2 / 6.0, 6) AS score_4;
-- 7 (5.00) is below half the price: beyond what the model stores, so a
-- lower min_price_ratio does not reach it
SELECT rank, candidate_id, price, price_ratio FROM upsell.downsell_candidates(2, 10, 0.4);
SELECT count(*) FROM upsell.downsell_candidates(7);

-- the model against a plain-SQL reference of every pair and score
WITH l AS (
	SELECT DISTINCT customer_id AS c, product_id AS p, ordered_at AS t FROM t40.lines WHERE quantity > 0),
priced AS (SELECT * FROM t40.products WHERE price > 0),
buyers AS (SELECT p, count(DISTINCT c) AS n FROM l GROUP BY p),
paths AS (
	SELECT a.p AS a, b.p AS b, count(DISTINCT a.c) AS n
	FROM l a JOIN l b ON a.c = b.c AND a.t < b.t AND a.p <> b.p GROUP BY 1, 2),
group_buyers AS (
	SELECT x.variant_group, count(DISTINCT l.c) AS n FROM l JOIN priced x ON x.product_id = l.p GROUP BY 1),
category_buyers AS (
	SELECT x.category, count(DISTINCT l.c) AS n FROM l JOIN priced x ON x.product_id = l.p GROUP BY 1),
ref AS (
	SELECT a.product_id, b.product_id AS candidate_id,
		   CASE WHEN b.price > a.price THEN 'upgrade' ELSE 'downsell' END AS kind,
		   a.variant_group IS NOT DISTINCT FROM b.variant_group AND a.variant_group IS NOT NULL AS same_group,
		   coalesce(pa.n, 0) AS paths,
		   coalesce(bb.n, 0)::float8 / CASE WHEN a.variant_group = b.variant_group THEN gb.n ELSE cb.n END AS popularity,
		   least(a.price, b.price) / greatest(a.price, b.price) AS closeness,
		   coalesce(pa.n, 0)::float8 / nullif(ba.n, 0) AS path_rate
	FROM priced a JOIN priced b ON a.product_id <> b.product_id AND a.price <> b.price
		AND (a.category = b.category
			 OR (a.variant_group = b.variant_group AND (a.category IS NULL OR b.category IS NULL)))
		AND b.price <= 2 * a.price AND 2 * b.price >= a.price
	LEFT JOIN paths pa ON pa.a = a.product_id AND pa.b = b.product_id
	LEFT JOIN buyers ba ON ba.p = a.product_id
	LEFT JOIN buyers bb ON bb.p = b.product_id
	LEFT JOIN group_buyers gb ON gb.variant_group = a.variant_group
	LEFT JOIN category_buyers cb ON cb.category = a.category),
scored AS (
	SELECT r.*, CASE WHEN kind = 'upgrade'
				 THEN 0.5 * coalesce(path_rate, 0) + 0.3 * coalesce(popularity, 0) + 0.2 * closeness
				 ELSE 0.5 * closeness + 0.5 * coalesce(popularity, 0) END AS score
	FROM ref r)
SELECT count(*) AS reference_pairs,
	   (SELECT count(*) FROM upsell.upgrade_model) AS model_pairs,
	   count(*) FILTER (WHERE u.product_id IS NOT NULL AND u.kind = s.kind AND u.same_group = s.same_group
						AND u.paths = s.paths AND abs(u.score - s.score) < 1e-9) AS agreeing
FROM scored s
LEFT JOIN upsell.upgrade_model u ON u.product_id = s.product_id AND u.candidate_id = s.candidate_id;

-- merchant exclusions are respected
INSERT INTO upsell.exclusions (product_id, note) VALUES (9, 't40');
SELECT rank, candidate_id FROM upsell.upgrade_candidates(1);
SELECT rank, candidate_id FROM upsell.downsell_candidates(2);
DELETE FROM upsell.exclusions WHERE note = 't40';

-- a guest's order (a line without a customer) is a buyer of its own, apart
-- from every customer: its key, 105, is also the id of customer 105, who
-- bought 2 before; its 3 is no path from 2 (1.5 merged the two: 1 path)
INSERT INTO t40.lines VALUES (105, NULL, '2024-01-06', 3, 1);
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;
SELECT product_id, candidate_id, paths, buyers, candidate_buyers
FROM upsell.upgrade_model WHERE product_id = 2 AND candidate_id = 3;
DELETE FROM t40.lines WHERE customer_id IS NULL;
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;

-- edge cases: unknown product, NULL product (an error), unpriced product, k = 0
SELECT count(*) FROM upsell.upgrade_candidates(999);
SELECT count(*) FROM upsell.upgrade_candidates(NULL);
SELECT count(*) FROM upsell.upgrade_candidates(8);
SELECT count(*) FROM upsell.upgrade_candidates(1, 0);
SELECT count(*) FROM upsell.downsell_candidates(999);
SELECT count(*) FROM upsell.upgrade_candidates(1, 3, 1);	-- nothing is dearer and at most 1x
SELECT count(*) > 0 AS at_the_bound FROM upsell.upgrade_candidates(1, 3, 1000000);

-- bad input: clear errors
SELECT * FROM upsell.upgrade_candidates(1, -1);
SELECT * FROM upsell.upgrade_candidates(1, NULL);
SELECT * FROM upsell.upgrade_candidates(1, 3, 0.9);
SELECT * FROM upsell.upgrade_candidates(1, 3, -2);
SELECT * FROM upsell.upgrade_candidates(1, 3, NULL);
SELECT * FROM upsell.upgrade_candidates(1, 3, 1000001);
SELECT * FROM upsell.downsell_candidates(1, -3);
SELECT * FROM upsell.downsell_candidates(1, 3, 1.5);
SELECT * FROM upsell.downsell_candidates(1, 3, -0.5);
SELECT * FROM upsell.upgrade_candidates(1, tenant_id => 5);
SELECT * FROM upsell.upgrade_candidates('abc');
SELECT * FROM upsell._upgrade_build('{1,2}', '{0}', '{0,0}', '{1,2}', NULL, NULL, NULL, 2, 10, 10, 10);
SELECT * FROM upsell._upgrade_build('{1,1}', '{0,0}', '{0,0}', '{1,2}', NULL, NULL, NULL, 2, 10, 10, 10);
SELECT * FROM upsell._upgrade_build('{1,2}', '{0,0}', '{0,0}', '{1,-2}', NULL, NULL, NULL, 2, 10, 10, 10);
SELECT * FROM upsell._upgrade_build('{1,2}', '{0,0}', '{0,0}', '{1,2}', NULL, NULL, NULL, 0.5, 10, 10, 10);
SELECT * FROM upsell._upgrade_build('{1,2}', '{0,0}', '{0,0}', '{1,2}', '{1}', '{}', '{1}', 2, 10, 10, 10);
SELECT * FROM upsell._upgrade_build('{1,2}', '{0,0}', '{0,0}', '{1,2}', NULL, NULL, NULL, NULL, 10, 10, 10);
-- an empty catalog is no error
SELECT count(*) FROM upsell._upgrade_build('{}', '{}', '{}', '{}', '{1}', '{2024-01-01}', '{7}', 2, 10, 10, 10);

SET client_min_messages = warning;
DROP SCHEMA t40 CASCADE;
