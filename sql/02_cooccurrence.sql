-- The co-occurrence aggregate, its type, and frequently_bought_together.
\set SHOW_CONTEXT never
CREATE SCHEMA co;
-- orders: 1 {1,2,3}  2 {1,2} (2 twice, once as two lines)  3 {2}  4 {1,3}
--         5: a return and a cancelled line only; NULL ids are skipped
CREATE TABLE co.lines (order_id int, product_id int, qty numeric, shop int);
INSERT INTO co.lines VALUES
	(1, 1, 1, 1), (1, 2, 1, 1), (1, 3, 2, 1),
	(2, 1, 1, 1), (2, 2, 1, 1), (2, 2, 3, 1),
	(3, 2, 1, 1),
	(4, 3, 1, 1), (4, 1, 1, 1),
	(5, 1, -1, 1), (5, 2, 0, 1),
	(NULL, 1, 1, 1), (6, NULL, 1, 1),
	-- another tenant with the same product ids: must never mix
	(100, 1, 1, 2), (100, 9, 1, 2), (101, 1, 1, 2), (101, 9, 1, 2);

SELECT (upsell.cooccurrence_info(upsell.cooccurrence_agg(order_id, product_id, qty))).*
FROM co.lines WHERE shop = 1;
SELECT p.* FROM (SELECT upsell.cooccurrence_agg(order_id, product_id, qty) s FROM co.lines WHERE shop = 1) a,
	upsell.cooccurrence_products(a.s) p ORDER BY 1;
-- without a quantity every line counts
SELECT (upsell.cooccurrence_info(upsell.cooccurrence_agg(order_id, product_id))).orders
FROM co.lines WHERE shop = 1;
-- no rows: an empty value
SELECT (upsell.cooccurrence_info(upsell.cooccurrence_agg(order_id, product_id))).* FROM co.lines WHERE false;

-- frequently bought together over the registered orders, per tenant
SELECT upsell.register_orders('co.lines', 'order_id', 'product_id', quantity => 'qty', tenant_id => 'shop');
SELECT tenant_id, product_id, other_id, together, product_count, other_count, orders,
	   round(support::numeric, 4) AS support, round(confidence::numeric, 4) AS confidence,
	   round(lift::numeric, 4) AS lift, round(leverage::numeric, 4) AS leverage,
	   round(conviction::numeric, 4) AS conviction, round(jaccard::numeric, 4) AS jaccard,
	   round(score::numeric, 4) AS score
FROM upsell.frequently_bought_together(min_count => 1)
ORDER BY tenant_id, product_id, other_id;
-- thresholds filter
SELECT tenant_id, product_id, other_id, together
FROM upsell.frequently_bought_together(min_count => 2, min_confidence => 0.6)
ORDER BY 1, 2, 3;
SELECT count(*) FROM upsell.frequently_bought_together(min_support => 0.5);

-- the same over any query (here without tenants, text order ids)
SELECT tenant_id, product_id, other_id, together, orders
FROM upsell.frequently_bought_together(
	$$SELECT 'o' || order_id, product_id FROM co.lines WHERE shop = 1 AND qty > 0$$, min_count => 2)
ORDER BY 2, 3;
SELECT tenant_id, product_id, other_id, together
FROM upsell.frequently_bought_together($$SELECT order_id, product_id, shop FROM co.lines$$)
ORDER BY 1, 2, 3;

-- bad input: clear errors
SELECT * FROM upsell.frequently_bought_together(min_count => -1);
SELECT * FROM upsell.frequently_bought_together(min_support => -0.1);
SELECT * FROM upsell.frequently_bought_together(min_confidence => 1.5);
SELECT * FROM upsell.frequently_bought_together(min_count => NULL);
SELECT * FROM upsell.frequently_bought_together('SELECT 1');
SELECT * FROM upsell.frequently_bought_together($$SELECT 1, 'x'::text$$);
SELECT * FROM upsell.frequently_bought_together($$SELECT 1, 2, 'x'::text$$);
SELECT * FROM upsell.frequently_bought_together('CREATE TABLE co.x ()');
SELECT * FROM upsell.frequently_bought_together('SELECT FROM nowhere');
SELECT * FROM upsell.frequently_bought_together(NULL::text);

-- the value: text form round trips, corrupted values are rejected
CREATE TABLE co.state AS
SELECT shop, upsell.cooccurrence_agg(order_id, product_id, qty) AS s FROM co.lines GROUP BY shop;
SELECT count(*) FROM co.state WHERE s::text::upsell.cooccurrence::text = s::text;
SELECT 'nonsense'::upsell.cooccurrence;
SELECT '\x00'::upsell.cooccurrence;
SELECT overlay(s::text placing 'ff' from 13 for 2)::upsell.cooccurrence FROM co.state WHERE shop = 1;
SELECT left(s::text, -4)::upsell.cooccurrence FROM co.state WHERE shop = 1;

-- merging the counts of two disjoint sets of orders = counting them together
SELECT upsell.cooccurrence_merge(a.s, b.s)::text = c.s::text AS merge_equals_whole
FROM (SELECT upsell.cooccurrence_agg(order_id, product_id, qty) s FROM co.lines WHERE order_id <= 2) a,
	 (SELECT upsell.cooccurrence_agg(order_id, product_id, qty) s FROM co.lines WHERE order_id > 2 OR order_id IS NULL) b,
	 (SELECT upsell.cooccurrence_agg(order_id, product_id, qty) s FROM co.lines) c;
SELECT upsell.cooccurrence_sum(s)::text = (SELECT upsell.cooccurrence_agg(order_id, product_id, qty) FROM co.lines)::text
FROM co.state;

-- upsell.max_basket_size: larger orders count for products, not pairs
SET upsell.max_basket_size = 2;
SELECT (upsell.cooccurrence_info(upsell.cooccurrence_agg(order_id, product_id, qty))).*
FROM co.lines WHERE shop = 1;
SELECT product_id, other_id, together FROM upsell.frequently_bought_together(min_count => 1)
WHERE tenant_id = 1 ORDER BY 1, 2;
RESET upsell.max_basket_size;

DELETE FROM upsell.order_source;
DROP SCHEMA co CASCADE;
