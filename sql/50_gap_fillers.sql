-- upsell.gap_fillers: the items that close the gap to the next threshold,
-- complements of the cart first, least overshoot, never cart items,
-- out-of-stock or excluded products.
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS gf CASCADE;
CREATE SCHEMA gf;
CREATE TABLE gf.products (id int PRIMARY KEY, title text, price numeric(10, 2), in_stock boolean, category text);
INSERT INTO gf.products VALUES
	(1, 'running shoes', 20.00, true, 'shoes'),
	(2, 'sandals', 15.00, true, 'shoes'),
	(10, 'socks', 15.00, true, 'accessories'),		-- best complement of 1, exact fit
	(11, 'laces', 16.00, true, 'accessories'),		-- weaker complement of 1
	(12, 'cap', 15.00, true, 'accessories'),		-- exact fit, unrelated
	(13, 'bottle', 14.99, true, 'accessories'),
	(14, 'insoles', 7.50, true, 'accessories'),
	(15, 'spray', 7.50, true, 'care'),
	(16, 'towel', 15.00, false, 'accessories'),	-- out of stock
	(17, 'poster', 15.00, true, 'accessories'),	-- excluded by the merchant
	(18, 'gift card', 15.00, true, 'gift cards'),	-- excluded category
	(19, 'jacket', 100.00, true, 'clothes'),
	(20, 'mystery', NULL, true, 'accessories');		-- no price: never offered
CREATE TABLE gf.lines (order_id int, product_id int);
INSERT INTO gf.lines
SELECT o, p FROM generate_series(1, 6) o, LATERAL (VALUES (1), (10)) v(p)	-- 1 + socks: 6 orders
UNION ALL
SELECT o, p FROM generate_series(7, 8) o, LATERAL (VALUES (1), (11)) v(p)	-- 1 + laces: 2 orders
UNION ALL
SELECT o, p FROM generate_series(9, 12) o, LATERAL (VALUES (1)) v(p)		-- 1 alone
UNION ALL
SELECT o, p FROM generate_series(13, 14) o, LATERAL (VALUES (12), (19)) v(p);
SELECT upsell.register_orders('gf.lines', 'order_id', 'product_id');
SELECT upsell.register_products('gf.products', 'id', price => 'price', in_stock => 'in_stock',
	category => 'category', title => 'title');
CALL upsell.refresh();
INSERT INTO upsell.exclusions (product_id) VALUES (17);
INSERT INTO upsell.exclusions (category) VALUES ('gift cards');
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES
	('free_shipping', 50, 'free shipping'), ('discount', 100, '10% off');
RESET client_min_messages;
\set SHOW_CONTEXT never

-- the model: in-stock products with a price, sorted by (cents, id); the
-- categories whose products substitute each other (category_model: no order
-- holds two shoes, nor two accessories), never combined
SELECT products, prices, product_ids, categories, category_of, group_of, substitutes FROM upsell.threshold_candidates;

-- cart 1 + 2 = 35.00: gap 15.00 to free shipping.  Socks (best complement,
-- relevance 1, exact) first with score 2; laces (complement, 1.00 over); the
-- exact unrelated cap; the pair insoles + spray (exact, 0.8); then socks +
-- spray and the other accessories with the spray: never two accessories
-- together.  Never 1, 2 (cart), 16 (out of stock), 17, 18 (excluded), 20.
SELECT rank, product_ids, added, new_total, overshoot, threshold,
	   round(relevance::numeric, 4) AS relevance, round(score::numeric, 4) AS score
FROM upsell.gap_fillers(ARRAY[1, 2], k => 8);

-- the scores follow the stated formula: gap / added * (1 + relevance) * 0.8^(n - 1)
SELECT bool_and(abs(score - (15.00 / added)::float8 * (1 + relevance)
						* power(0.8, cardinality(product_ids) - 1)) < 1e-12) AS formula_holds,
	   bool_and(NOT product_ids && ARRAY[1, 2, 16, 17, 18, 20]::bigint[]) AS never_forbidden,
	   bool_and(added >= 15.00) AS all_close_the_gap
FROM upsell.gap_fillers(ARRAY[1, 2], k => 50, max_items => 3);
-- no offer of the empty cart holds two products that substitute each other
SELECT count(*) AS offers,
	   count(*) FILTER (WHERE EXISTS (
		   SELECT FROM unnest(product_ids) a JOIN gf.products pa ON pa.id = a,
					   unnest(product_ids) b JOIN gf.products pb ON pb.id = b
		   WHERE a < b AND pa.category = pb.category AND pa.category IN ('shoes', 'accessories'))) AS with_two_substitutes
FROM upsell.gap_fillers('{}', k => 50, max_items => 3);

-- laces' relevance is its noisy-OR pair score relative to the socks'
SELECT round(relevance::numeric, 6) = round((SELECT (l.score / s.score)::numeric
		FROM upsell.pair_model l, upsell.pair_model s
		WHERE l.product_id = 1 AND l.other_id = 11 AND s.product_id = 1 AND s.other_id = 10), 6) AS laces_relevance
FROM upsell.gap_fillers(ARRAY[1, 2], k => 5) WHERE product_ids = '{11}';

-- the socks excluded: the laces are the best complement that may be
-- offered, so theirs is relevance 1 (it was relative to the excluded socks)
INSERT INTO upsell.exclusions (product_id) VALUES (10);
SELECT round(relevance::numeric, 6) AS laces_relevance
FROM upsell.gap_fillers(ARRAY[1, 2], k => 5) WHERE product_ids = '{11}';
DELETE FROM upsell.exclusions WHERE product_id = 10 AND with_product_id IS NULL;

-- one item only: the least overshoot is the cheapest eligible product at or
-- above the gap, computed independently from the shop's table
SELECT product_ids, overshoot FROM upsell.gap_fillers(ARRAY[1, 2], k => 3, max_items => 1);
SELECT (SELECT min(overshoot) FROM upsell.gap_fillers(ARRAY[1, 2], k => 1000, max_items => 1))
	 = (SELECT min(price) - 15.00 FROM gf.products
		WHERE in_stock AND price >= 15.00 AND id NOT IN (1, 2, 17) AND category <> 'gift cards') AS least_single;

-- quantities count: 2 x sandals + shoes = 50.00 reaches free shipping; next is 100
SELECT rank, product_ids, added, new_total, overshoot, threshold
FROM upsell.gap_fillers(ARRAY[1, 2], ARRAY[1, 2], k => 3);

-- an exclusion of a product next to a cart item: the cap is not offered with the shoes
INSERT INTO upsell.exclusions (product_id, with_product_id) VALUES (12, 1);
SELECT product_ids FROM upsell.gap_fillers(ARRAY[1, 2], k => 4);
SELECT bool_or(product_ids @> '{12}') AS cap_offered FROM upsell.gap_fillers(ARRAY[1, 2], k => 1000, max_items => 3);
-- without product 1 in the cart (gap 35.00): the running shoes are a substitute of the
-- sandals (one category, never bought together), so neither they nor the cap with them
SELECT rank, product_ids, overshoot FROM upsell.gap_fillers(ARRAY[2], k => 3);

-- every threshold reached: no rows; k = 0: no rows
SELECT count(*) FROM upsell.gap_fillers(ARRAY[19], k => 5);
SELECT count(*) FROM upsell.gap_fillers(ARRAY[1, 2], k => 0);
-- empty cart: the gap is the whole first threshold, 50.00: the jacket, and
-- with the insoles (shoes and sandals, and two accessories, substitute each
-- other: the exact shoes + sandals + socks is no offer)
SELECT rank, product_ids, added, overshoot FROM upsell.gap_fillers('{}', k => 2, max_items => 3);
-- cart 15.00, gap 35.00: the jacket is the only single item that closes it
SELECT product_ids, added FROM upsell.gap_fillers(ARRAY[10], k => 1, max_items => 1);

-- bad input
SELECT * FROM upsell.gap_fillers(ARRAY[1, 2], k => -1);
SELECT * FROM upsell.gap_fillers(ARRAY[1, 2], k => NULL);
SELECT * FROM upsell.gap_fillers(ARRAY[1, 2], k => 1001);
SELECT * FROM upsell.gap_fillers(ARRAY[1, 2], max_items => 0);
SELECT * FROM upsell.gap_fillers(ARRAY[1, 2], max_items => 4);
SELECT * FROM upsell.gap_fillers(ARRAY[1, 2], ARRAY[1]);
SELECT * FROM upsell.gap_fillers(ARRAY[1, 2], ARRAY[1, 0]);
-- an unknown product leaves the cart's value unknown: no gap to fill
SELECT * FROM upsell.gap_fillers(ARRAY[1, 999]);
SELECT * FROM upsell.gap_fillers(ARRAY[1, NULL]);
SELECT * FROM upsell.gap_fillers(ARRAY[1], tenant_id => 3);
SELECT * FROM upsell.gap_fillers(ARRAY[1], currency => 'US');
-- the internal search refuses NULLs and bad sizes itself
SELECT * FROM upsell._gap_fill(0, now(), 1, '{}', '{}', '{}', '{}', '{}', 5, NULL, '{}', '{}');
SELECT * FROM upsell._gap_fill(0, now(), 1, '{}', '{}', '{}', '{1}', '{}', 5, 2, '{}', '{}');
SELECT * FROM upsell._gap_fill(0, now(), 1, '{}', '{}', '{}', '{}', '{}', 5, 9, '{}', '{}');

-- a hand-damaged model is an error, not a crash
UPDATE upsell.threshold_candidates SET prices = prices[2:], built_at = built_at + interval '1 second';
SELECT * FROM upsell.gap_fillers(ARRAY[1, 2]);
UPDATE upsell.threshold_candidates SET prices = array_reverse_helper.p, built_at = built_at + interval '1 second'
FROM (SELECT array_agg(x ORDER BY x DESC) AS p FROM (SELECT unnest(product_ids) AS x FROM upsell.threshold_candidates) s) array_reverse_helper;
SELECT * FROM upsell.gap_fillers(ARRAY[1, 2]);

SET client_min_messages = warning;
DELETE FROM upsell.thresholds;
DELETE FROM upsell.exclusions;
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA gf CASCADE;
