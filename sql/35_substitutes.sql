-- Complements, not substitutes (on the real electronics shop): no phone is
-- offered next to a phone in the cart, on the page or on the thank-you page;
-- the orders decide per category, the merchant overrides; gap fillers add on
-- (a quantity step of a cart line, "you are X away" when the gap is large).
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set ECHO none
\i scripts/load_electronics.sql
\set ECHO all
-- small chunks of the counts, so that every reader of them meets several
SET upsell.cooccurrence_chunk_pairs = 40;
SELECT upsell.register_orders('shop.order_lines', order_id => 'order_id', product_id => 'product_id',
	customer_id => 'customer', ordered_at => 'ordered_at', quantity => 'quantity', unit_price => 'unit_price');
SELECT upsell.register_products('shop.products', product_id => 'product_id', price => 'price',
	category => 'category', variant_group => 'variant_group', in_stock => 'in_stock', title => 'title');
CALL upsell.refresh();
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES ('free_shipping', 1000, 'free shipping');

-- per category: co-purchased pairs within it against popularity alone
SELECT category, products, together, round(expected::numeric, 1) AS expected,
	   round(lift::numeric, 3) AS lift, substitutes, source
FROM upsell.category_model ORDER BY category, other_category;
-- the same figures from a plain count: pairs of products bought in one order
WITH o AS (SELECT DISTINCT order_id, product_id FROM shop.order_lines WHERE quantity > 0),
n AS (SELECT product_id, count(*)::float8 AS n FROM o GROUP BY product_id),
pairs AS (SELECT a.product_id AS a, b.product_id AS b, count(*) AS t
		  FROM o a JOIN o b ON a.order_id = b.order_id AND a.product_id < b.product_id GROUP BY 1, 2),
totals AS (SELECT sum(n) AS s1, sum(n * n) AS s2, (SELECT sum(t) FROM pairs) AS pairs FROM n),
cat AS (SELECT p.category, sum(n.n) AS s1, sum(n.n * n.n) AS s2
		FROM shop.products p JOIN n USING (product_id) GROUP BY 1 HAVING count(*) >= 2),
within AS (SELECT pa.category, sum(x.t) AS t
		   FROM pairs x JOIN shop.products pa ON pa.product_id = x.a JOIN shop.products pb ON pb.product_id = x.b
		   WHERE pa.category = pb.category GROUP BY 1)
SELECT c.category, coalesce(w.t, 0) AS together,
	   round((t.pairs * (c.s1 ^ 2 - c.s2) / (t.s1 ^ 2 - t.s2))::numeric, 1) AS expected
FROM cat c CROSS JOIN totals t LEFT JOIN within w USING (category)
ORDER BY 1;

-- What shows a phone next to a phone: nothing.  Every phone alone and with
-- every other product, in the cart (complements, gap fillers, upgrades), as
-- recommend_for_cart and gap_fillers; every phone's page; the thank-you page
-- of the 100 latest orders with a phone.
CREATE TEMP TABLE phones AS SELECT product_id::bigint AS id FROM shop.products WHERE category = 'phones';
CREATE TEMP TABLE carts AS
SELECT ARRAY[p.id] AS cart FROM phones p
UNION ALL
SELECT ARRAY[p.id, o.product_id] FROM phones p, shop.products o WHERE o.product_id <> p.id;
SELECT count(*) AS carts,
	   count(*) FILTER (WHERE EXISTS (
		   SELECT FROM upsell.cart_offers(c.cart) o, unnest(o.product_ids) x
		   WHERE x IN (SELECT id FROM phones) AND x <> ALL (c.cart))) AS cart_offers_with_another_phone,
	   count(*) FILTER (WHERE EXISTS (
		   SELECT FROM upsell.recommend_for_cart(c.cart, 10) r
		   WHERE r.product_id IN (SELECT id FROM phones))) AS recommend_with_a_phone,
	   count(*) FILTER (WHERE EXISTS (
		   SELECT FROM upsell.gap_fillers(c.cart, k => 10) g, unnest(g.product_ids) x
		   WHERE x IN (SELECT id FROM phones))) AS gap_fillers_with_a_phone
FROM carts c;
SELECT count(*) AS page_offers,
	   count(*) FILTER (WHERE x IN (SELECT id FROM phones)) AS phones_offered
FROM upsell.product_page_offers o, unnest(o.product_ids) x
WHERE o.product_id IN (SELECT id FROM phones);
SELECT count(DISTINCT o.order_id) AS orders, count(*) AS offers,
	   count(*) FILTER (WHERE x IN (SELECT id FROM phones)) AS phones_offered
FROM (SELECT m.order_id FROM upsell.order_model m
	  WHERE m.items && ARRAY(SELECT id FROM phones) ORDER BY m.ordered_at DESC, m.order_key LIMIT 100) r
JOIN upsell.post_purchase_offers o USING (order_id), unnest(o.product_ids) x;
-- an upgrade is of the same variant group, or up a ladder the buyers climb:
-- none between these phones (few Google Phone buyers later bought an iPhone)
SELECT count(*) AS phone_upgrades_in_carts
FROM phones p, upsell.cart_offers(ARRAY[p.id]) o WHERE o.offer_type = 'upgrade';
SELECT u.paths, u.buyers, round(u.popularity::numeric, 3) AS popularity,
	   upsell._upgrade_on_ladder(u.same_group, u.paths, u.buyers, u.popularity) AS on_ladder
FROM upsell.upgrade_model u
JOIN shop.products a ON a.product_id = u.product_id AND a.title = 'Google Phone'
JOIN shop.products b ON b.product_id = u.candidate_id AND b.title = 'iPhone'
WHERE u.kind = 'upgrade';
-- the ladder rule is one C function, the one the product page's and the
-- cart's builders apply: it says what its SQL says for every input, NULLs,
-- NaN and infinities too (every combination; the cases true, false and
-- NULL counted)
WITH g(same_group) AS (VALUES (true), (false), (NULL::boolean)),
	 p(paths) AS (VALUES (0::bigint), (2), (3), (7), (-5), (NULL)),
	 b(buyers) AS (VALUES (0::bigint), (1), (10), (-3), (NULL)),
	 q(popularity) AS (VALUES (0.0::float8), (0.25), (0.5), (3.0), ('NaN'), ('Infinity'), ('-Infinity'), (NULL)),
	 cases AS (
		SELECT upsell._upgrade_on_ladder(same_group, paths, buyers, popularity) AS c_rule,
			   same_group OR (paths >= 3 AND paths::float8 / greatest(buyers, 1) > popularity) AS sql_rule
		FROM g, p, b, q)
SELECT count(*) AS cases, count(*) FILTER (WHERE c_rule IS DISTINCT FROM sql_rule) AS differing,
	   count(*) FILTER (WHERE sql_rule) AS on_ladder, count(*) FILTER (WHERE NOT sql_rule) AS off_ladder,
	   count(*) FILTER (WHERE sql_rule IS NULL) AS unknown
FROM cases;
SELECT upsell.is_substitute(0, 19, '{10}') AS iphone_for_google_phone,
	   upsell.is_substitute(0, 16, '{10}') AS usbc_for_google_phone,
	   upsell.is_substitute(0, 10, '{10}') AS itself;

-- Gap fillers that add on.  A cart 0.33 short of 20: Wired Headphones
-- (11.99) and 2 packs of AA batteries (3.84 each); one more pack closes it
-- (the shopper buys several already).  The headphones are no step: one
-- pair, of a category whose products substitute each other.
DELETE FROM upsell.thresholds;
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES ('free_shipping', 20, 'free shipping');
SELECT product_id, title, price, category FROM shop.products WHERE product_id IN (5, 10, 18) ORDER BY 1;
SELECT "rank", offer_type, product_ids, reason FROM upsell.cart_offers('{18, 5}', '{1, 2}')
WHERE offer_type = 'gap_filler' ORDER BY "rank";
-- one pack (4.17 short): no step while batteries substitute each other
SELECT count(*) AS battery_steps FROM upsell.cart_offers('{18, 5}', '{1, 1}')
WHERE offer_type = 'gap_filler' AND product_ids = '{5}';
-- a large gap: the Google Phone's cart is 392.32 short of 1000; no second
-- phone, no second big-ticket item first, but the best add-on, saying how
-- far the cart is
DELETE FROM upsell.thresholds;
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES ('free_shipping', 1000, 'free shipping');
SELECT "rank", offer_type, product_ids, reason FROM upsell.cart_offers('{10, 5}', '{1, 2}')
WHERE offer_type = 'gap_filler' ORDER BY "rank";

-- The merchant overrides: batteries go together, laptops and monitors
-- substitute each other (applied by the next refresh).
INSERT INTO upsell.category_substitutes (category, other_category, substitutes) VALUES
	('batteries', 'batteries', false), ('laptops', 'monitors', true);
CALL upsell.refresh();
SELECT category, other_category, substitutes, source FROM upsell.category_model
WHERE source = 'merchant' ORDER BY 1, 2;
SELECT r.product_id, p.title FROM upsell.recommend_for_cart('{5}', 19) r	-- AA batteries
JOIN shop.products p USING (product_id) WHERE p.category IN ('batteries') ORDER BY 1;
SELECT count(*) AS monitors_offered_with_a_laptop
FROM shop.products l, upsell.cart_offers(ARRAY[l.product_id::bigint]) o, unnest(o.product_ids) x
JOIN shop.products m ON m.product_id = x
WHERE l.category = 'laptops' AND m.category = 'monitors';
-- now one pack 4.17 short gets its step: 2 more packs (batteries go together)
DELETE FROM upsell.thresholds;
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES ('free_shipping', 20, 'free shipping');
SELECT "rank", offer_type, product_ids, reason FROM upsell.cart_offers('{18, 5}', '{1, 1}')
WHERE offer_type = 'gap_filler' AND product_ids = '{5}';

-- What a cart blocks, computed once per request (upsell._cart_blocked): the
-- variant groups of its lines, the categories that substitute theirs (a
-- laptop: monitors), and with exclusions the products and categories
-- excluded next to it (a product excluded with another line only then).
INSERT INTO upsell.exclusions (product_id, with_product_id) VALUES (18, 10);
INSERT INTO upsell.exclusions (category) VALUES ('batteries');
-- (each set sorted: a set's order is not part of the answer)
CREATE FUNCTION pg_temp.sorted(anyarray) RETURNS anyarray
LANGUAGE sql IMMUTABLE AS 'SELECT ARRAY(SELECT x FROM unnest($1) x ORDER BY 1)';
SELECT p.product_id, p.category, p.variant_group,
	   pg_temp.sorted(b.ids) AS ids, pg_temp.sorted(b.variant_groups) AS variant_groups,
	   pg_temp.sorted(b.categories) AS categories
FROM ((SELECT product_id FROM shop.products WHERE category = 'laptops' ORDER BY 1 LIMIT 1)
	  UNION ALL SELECT 10) c
JOIN shop.products p USING (product_id),
	 LATERAL upsell._cart_blocked(0, ARRAY[p.product_id::bigint, 5], true) b
ORDER BY 1;
SELECT pg_temp.sorted(ids) AS ids, pg_temp.sorted(variant_groups) AS variant_groups,
	   pg_temp.sorted(categories) AS categories
FROM upsell._cart_blocked(0, '{5}', true)
UNION ALL
SELECT pg_temp.sorted(ids), pg_temp.sorted(variant_groups), pg_temp.sorted(categories)
FROM upsell._cart_blocked(0, '{10}', false)
UNION ALL
SELECT pg_temp.sorted(ids), pg_temp.sorted(variant_groups), pg_temp.sorted(categories)
FROM upsell._cart_blocked(0, '{}', true);
DELETE FROM upsell.exclusions;

DELETE FROM upsell.thresholds;
DELETE FROM upsell.category_substitutes;
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA shop CASCADE;
RESET client_min_messages;
