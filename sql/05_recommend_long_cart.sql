-- recommend_for_cart on a long cart: each cart item's pairs count beyond
-- chance, weighed by the shop's pair dispersion (cooccurrence_model
-- .pair_dispersion), so that popularity counts once however long the cart.
\set SHOW_CONTEXT never
CREATE SCHEMA lc;
CREATE TABLE lc.products (shop int, id int, price numeric);
INSERT INTO lc.products SELECT 1, id, 5 FROM (VALUES (1), (10), (11), (12), (20), (30), (31)) v(id);
CREATE TABLE lc.lines (shop int, order_id int, product_id int);
-- 200 orders: bread (1) in 120 of them (60%), and in 12 of the 20 orders of
-- each of 10, 11 and 12 (60%: no more than chance); jam (20) in 12 orders,
-- 10 of them with 10, 11 and 12 (half their orders); 30 and 31 bought
-- together in 70 orders
INSERT INTO lc.lines
SELECT 1, o, p FROM generate_series(1, 10) o, (VALUES (10), (11), (12), (20)) v(p)
UNION ALL SELECT 1, o, p FROM generate_series(11, 20) o, (VALUES (10), (11), (12)) v(p)
UNION ALL SELECT 1, o, 1 FROM generate_series(1, 6) o
UNION ALL SELECT 1, o, 1 FROM generate_series(11, 16) o
UNION ALL SELECT 1, o, 20 FROM generate_series(21, 22) o
UNION ALL SELECT 1, o, 1 FROM generate_series(23, 130) o
UNION ALL SELECT 1, o, p FROM generate_series(131, 200) o, (VALUES (30), (31)) v(p);
SELECT upsell.register_orders('lc.lines', 'order_id', 'product_id', tenant_id => 'shop');
SELECT upsell.register_products('lc.products', 'id', price => 'price', tenant_id => 'shop');
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;

-- the dispersion equals an independent count: over every ordered pair of
-- products (c, j), bought together or not, (t_cj - n_c n_j / N)^2 summed,
-- against the binomial variance n_c P_j (1 - P_j) summed
WITH o AS (SELECT DISTINCT order_id, product_id FROM lc.lines),
n AS (SELECT product_id, count(*)::float8 AS n FROM o GROUP BY product_id),
total AS (SELECT count(DISTINCT order_id)::float8 AS n FROM o),
t AS (SELECT a.product_id AS c, b.product_id AS j, count(*)::float8 AS t
	  FROM o a JOIN o b ON a.order_id = b.order_id AND a.product_id <> b.product_id GROUP BY 1, 2),
d AS (SELECT sum((coalesce(t.t, 0) - nc.n * nj.n / total.n) ^ 2)
			 / sum(nc.n * (nj.n / total.n) * (1 - nj.n / total.n)) AS d
	  FROM n nc JOIN n nj ON nc.product_id <> nj.product_id CROSS JOIN total
	  LEFT JOIN t ON t.c = nc.product_id AND t.j = nj.product_id)
SELECT round(m.pair_dispersion::numeric, 6) AS pair_dispersion,
	   round(d.d::numeric, 6) AS independent,
	   abs(m.pair_dispersion - d.d) < 1e-9 * d.d AS equal
FROM upsell.cooccurrence_model m, d WHERE m.tenant_id = 1;

-- one cart item (its cart-mates 11 and 12 aside): bread, in 12 of 10's 20
-- orders and in 60% of the shop's,
-- ranks before jam, in 10 of them (the shrunk estimates: (12 + 20 * 0.6) /
-- 40 = 0.6 against (10 + 20 * 0.06) / 40 = 0.28)
SELECT "rank", product_id, round(score::numeric, 4) AS score, because
FROM upsell.recommend_for_cart('{10}', 4, 1);
-- three cart items, each of which was bought with jam in half its orders
-- and with bread no more often than any order is: jam first.  Summing what
-- each item says (0.6 per item for bread) counted bread's popularity three
-- times; what each says beyond chance (bread: 0, jam: 0.22) puts jam first
SELECT "rank", product_id, because
FROM upsell.recommend_for_cart('{10,11,12}', 2, 1);
-- the scores are the documented formula: sum_c t_cj / (n_c + w_c) + a P(j),
-- w_c = min(n_c, 500), a = mean_c w_c / (n_c + w_c) - r (sum_c - mean_c
-- n_c / (n_c + w_c)), r = 1 - 1/D (here every n_c = w_c = 20: a = 1/2 - r)
WITH r AS (SELECT 1 - 1 / pair_dispersion AS r FROM upsell.cooccurrence_model WHERE tenant_id = 1)
SELECT x.product_id,
	   abs(x.score - (CASE x.product_id WHEN 20 THEN 3 * 10 / 40.0 + (0.5 - r.r) * 12 / 200.0
										WHEN 1 THEN 3 * 12 / 40.0 + (0.5 - r.r) * 120 / 200.0 END)) < 1e-12 AS formula
FROM upsell.recommend_for_cart('{10,11,12}', 2, 1) x, r ORDER BY x."rank";

-- A product none of the cart's items was bought with is no evidence.  Where
-- the shop's pairs are far from chance, a < 0 for this cart, and its prior
-- alone would rank such products by how rare they are: 40, bought twice,
-- above 30 and 31, bought 70 times each.  They come after the products
-- bought with the cart, bestsellers first (the fallback's 'popular').  Shop
-- 2: shop 1's orders and 40's two.
INSERT INTO lc.products SELECT 2, id, price FROM lc.products WHERE shop = 1 UNION ALL SELECT 2, 40, 5;
INSERT INTO lc.lines SELECT 2, order_id, product_id FROM lc.lines WHERE shop = 1
UNION ALL SELECT 2, o, 40 FROM generate_series(201, 202) o;
SET client_min_messages = warning;
CALL upsell.refresh(tenant_id => 2);
RESET client_min_messages;
SELECT 0.5 - (1 - 1 / pair_dispersion) < 0 AS a_negative FROM upsell.cooccurrence_model WHERE tenant_id = 2;
SELECT "rank", product_id, because, reason FROM upsell.recommend_for_cart('{10,11,12}', 5, 2);

DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA lc CASCADE;
