-- Volume tiers and quantity_offer; upgrades and tiers per tenant.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS t40v CASCADE;
CREATE SCHEMA t40v;
RESET client_min_messages;

CREATE TABLE t40v.products (shop int, id int, cat text, price numeric(10, 2), stock int);
INSERT INTO t40v.products VALUES
	(1, 1, 'coffee', 9.00, 10), (1, 2, 'coffee', 12.00, 10),
	(1, 3, 'filters', 2.00, 10), (1, 4, 'filters', 3.00, 0),
	(1, 5, 'filters', NULL, 10),
	(2, 1, 'coffee', 50.00, 10), (2, 2, 'coffee', 55.00, 10), (2, 3, 'coffee', 40.00, 10);
CREATE TABLE t40v.lines (shop int, order_id int, product_id int);
INSERT INTO t40v.lines VALUES (1, 1, 1), (1, 2, 2), (1, 3, 3), (2, 10, 1), (2, 11, 2);

SELECT upsell.register_orders('t40v.lines', 'order_id', 'product_id', tenant_id => 'shop');
SELECT upsell.register_products('t40v.products', 'id', price => 'price', category => 'cat',
	in_stock => 'stock', tenant_id => 'shop');
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;

-- upgrades never mix tenants: product 1 is 9.00 in shop 1, 50.00 in shop 2
SELECT rank, candidate_id, price, extra_cost, reason FROM upsell.upgrade_candidates(1, 3, 1.5, 1);
SELECT rank, candidate_id, price, extra_cost, reason FROM upsell.upgrade_candidates(1, 3, 1.5, 2);
SELECT rank, candidate_id, price, saving FROM upsell.downsell_candidates(1, 3, 0.5, 2);
SELECT * FROM upsell.upgrade_candidates(1);

-- tiers: product 1 of shop 1 by unit price and percent off; filters of shop
-- 1 by category; product 2 of shop 1 has a tier that would cost more (never
-- offered); product 1 of shop 2
INSERT INTO upsell.volume_tiers (tenant_id, product_id, category, min_quantity, unit_price, percent_off) VALUES
	(1, 1, NULL, 3, 8.50, NULL),
	(1, 1, NULL, 6, NULL, 10),			-- 8.10
	(1, 1, NULL, 12, 7.00, NULL),
	(1, NULL, 'filters', 10, NULL, 20),	-- 1.60 for product 3
	(1, 2, NULL, 5, 12.50, NULL),
	(1, 2, NULL, 10, 11.00, NULL),
	(2, 1, NULL, 2, 45.00, NULL);

SELECT q, o.* FROM unnest('{1,2,3,5,6,11,12,100}'::int[]) q, upsell.quantity_offer(1, q, 1) o ORDER BY q;
-- the saving by hand: at 1 unit, 3 units at 8.50 instead of 9.00
SELECT 3 * (9.00 - 8.50) AS saving_at_1, 6 * (8.50 - round(9.00 * 0.9, 2)) AS saving_at_3,
	   12 * (round(9.00 * 0.9, 2) - 7.00) AS saving_at_6;
-- category tier (product 3 has none of its own); out of stock product 4;
-- the dearer tier of product 2 is skipped; product 2 of shop 2 has no tier
SELECT * FROM upsell.quantity_offer(3, 1, 1);
SELECT * FROM upsell.quantity_offer(4, 1, 1);
SELECT * FROM upsell.quantity_offer(2, 1, 1);
-- at 5 units that tier would make the unit dearer than its list price: the
-- list price stays the price (it was the tier's)
SELECT * FROM upsell.quantity_offer(2, 5, 1);
SELECT * FROM upsell.quantity_offer(2, 1, 2);
SELECT * FROM upsell.quantity_offer(1, 1, 2);
-- an excluded product gets no tier offer
INSERT INTO upsell.exclusions (tenant_id, product_id, note) VALUES (1, 3, 't40v');
SELECT * FROM upsell.quantity_offer(3, 1, 1);
DELETE FROM upsell.exclusions WHERE note = 't40v';
-- the cart offers the next tier at a discount of the list price, so that
-- the widget's price is the tier's to the cent: at 3 units (8.50 each) the
-- tier of 6 is 10% off 9.00, 8.10, not 4.7% off
SELECT offer_type, discount, reason FROM upsell.cart_offers('{1}', '{3}', 1) WHERE offer_type = 'quantity_tier';
SELECT o ->> 'price' AS price, o ->> 'discounted_price' AS discounted_price
FROM jsonb_array_elements(upsell.offers_json('cart', '{"items": [{"product_id": 1, "quantity": 3}]}', 1) -> 'offers') o
WHERE o ->> 'type' = 'quantity_tier';
SELECT o ->> 'price' AS price, o ->> 'discounted_price' AS discounted_price
FROM jsonb_array_elements(upsell.offers_json('cart', '{"items": [{"product_id": 1, "quantity": 7}]}', 1) -> 'offers') o
WHERE o ->> 'type' = 'quantity_tier';
-- a threshold is measured on what the cart pays, at its tiers' prices: 3
-- units of product 1 pay 8.50 each, 25.50, not 27.00 at the list price
-- (until 1.8 a threshold of 27 counted as reached, and one of 30 a gap of
-- 3.00, which a 3.33 filler was said to close); the 2.00 filler closes it
-- best (one more unit of the line adds 8.50: 7.00 over)
INSERT INTO upsell.thresholds (tenant_id, kind, amount) VALUES (1, 'free_shipping', 27);
SELECT amount, reached, gap FROM upsell.threshold_gap('{1}', '{3}', 1);
SELECT amount, reached, gap FROM upsell.threshold_gap('{1,3}', '{3,1}', 1);
-- the tier is of all a product's units, on however many lines
SELECT amount, reached, gap FROM upsell.threshold_gap('{1,1}', '{2,1}', 1);
SELECT product_ids, reason FROM upsell.cart_offers('{1}', '{3}', 1) WHERE offer_type = 'gap_filler';
-- more units of a line with tiers are priced at the tier of the new
-- quantity: 2 units of product 1 pay 9.00 each (18.00), a third makes 3 at
-- 8.50 (25.50, 7.50 more), short of 26; a fourth 4 at 8.50 (34.00, 16.00
-- more): "add 2 more", 8.00 over (at the list price a third unit read as
-- 27.00, "add 1 more to reach 26 (1.00 over)"); at the tier's discount,
-- so the widget shows 8.50 a unit
UPDATE upsell.thresholds SET amount = 26 WHERE tenant_id = 1;
SELECT product_ids, discount, reason FROM upsell.cart_offers('{1}', '{2}', 1)
WHERE offer_type = 'gap_filler' AND product_ids = '{1}';
SELECT o ->> 'price' AS price, o ->> 'discounted_price' AS discounted_price
FROM jsonb_array_elements(upsell.offers_json('cart', '{"items": [{"product_id": 1, "quantity": 2}]}', 1) -> 'offers') o
WHERE o ->> 'type' = 'gap_filler';
-- the claim holds: 3 units do not reach 26, 4 do
SELECT q AS units, reached, gap FROM unnest('{3,4}'::int[]) q, upsell.threshold_gap('{1}', ARRAY[q], 1);
-- the same product on two lines of one unit each: the step counts both
SELECT product_ids, reason FROM upsell.cart_offers('{1,1}', '{1,1}', 1)
WHERE offer_type = 'gap_filler' AND product_ids = '{1}';
DELETE FROM upsell.thresholds WHERE tenant_id = 1;
-- the cart prices its lines' tiers in C from the rules' cache (1.12): it
-- calls no _tier_offers, with tiers in the cart (product 1 of shop 2) or
-- without (until 1.9 every cart of a shop with tiers ran the query, and
-- until 1.12 every cart with a tiered line, most of its time)
SET track_functions = 'all';
BEGIN;
SELECT count(*) > 0 AS offers FROM upsell.cart_offers('{2,3}', NULL, 2);
SELECT offer_type, reason FROM upsell.cart_offers('{2,1}', '{1,1}', 2) WHERE offer_type = 'quantity_tier';
SELECT count(*) AS tier_offers_calls FROM pg_stat_xact_user_functions f WHERE f.funcname = '_tier_offers';
ROLLBACK;
RESET track_functions;

-- _tier_offers (C since 1.12) gives what its PL/pgSQL definition of 1.11
-- gave, row for row and digit for digit (numeric scales included): every
-- cart of up to 3 lines of shop 1's products (unknown 999, unpriced 5, out
-- of stock 4, one on two lines) at quantities 1 to 13, both ways of
-- tiered_only, with more tiers than above: a fixed price above the list
-- price, a percentage that does not divide evenly, a category tier and a
-- product tier of the same category (the product's replace the category's),
-- an excluded product and a category tier of a product without tiers of
-- its own
CREATE FUNCTION t40v.tier_offers_1_11(t bigint, product_ids bigint[], quantities int[],
	tiered_only boolean DEFAULT false)
RETURNS TABLE (n bigint, price numeric, tiered boolean, unit_price numeric, next_quantity int,
			   units_to_add int, new_unit_price numeric, total_saving numeric, reason text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	RETURN QUERY
	WITH line AS (
		SELECT u.n, u.product_id, u.quantity, m.price, m.category, m.in_stock,
			   u.product_id IN (SELECT v.product_id FROM upsell.volume_tiers v
								WHERE v.tenant_id = t AND v.product_id IS NOT NULL) AS own_tiers
		FROM unnest(product_ids, quantities) WITH ORDINALITY AS u(product_id, quantity, n)
		JOIN upsell.product_model m ON m.tenant_id = t AND m.product_id = u.product_id AND m.price > 0),
	tier AS (
		SELECT x.n, array_agg(x.min_quantity ORDER BY x.min_quantity, x.unit_price) AS mins,
			   array_agg(x.unit_price ORDER BY x.min_quantity, x.unit_price) AS prices
		FROM (SELECT l.n, v.min_quantity,
					 least(coalesce(v.unit_price, round(l.price * (1 - v.percent_off / 100), 2)), l.price) AS unit_price
			  FROM line l
			  JOIN upsell.volume_tiers v ON v.tenant_id = t AND v.product_id = l.product_id
			  WHERE l.own_tiers
			  UNION ALL
			  SELECT l.n, v.min_quantity,
					 least(coalesce(v.unit_price, round(l.price * (1 - v.percent_off / 100), 2)), l.price)
			  FROM line l
			  JOIN upsell.volume_tiers v
				ON v.tenant_id = t AND v.product_id IS NULL AND v.category = l.category
			  WHERE NOT l.own_tiers) x
		GROUP BY x.n),
	cur AS (
		SELECT l.*, x.mins IS NOT NULL AS tiered, x.mins, x.prices,
			   CASE WHEN NOT l.in_stock THEN 'out of stock'
					WHEN upsell.is_excluded(t, l.product_id, l.category, '{}') THEN 'excluded by the merchant'
			   END AS blocked,
			   coalesce((SELECT u.p FROM unnest(x.mins, x.prices) AS u(q, p) WHERE u.q <= l.quantity
						 ORDER BY u.q DESC, u.p LIMIT 1), l.price) AS cur_price
		FROM line l
		LEFT JOIN tier x ON x.n = l.n
		WHERE NOT tiered_only OR x.mins IS NOT NULL)
	SELECT c.n, c.price, c.tiered, c.cur_price, nx.q, nx.q - c.quantity, nx.p,
		   nx.q * (c.cur_price - nx.p),
		   CASE WHEN nx.q IS NOT NULL
				THEN format('add %s more to pay %s instead of %s each: %s saved on %s units',
							nx.q - c.quantity, round(nx.p, 2), round(c.cur_price, 2),
							round(nx.q * (c.cur_price - nx.p), 2), nx.q)
				ELSE coalesce(c.blocked, 'no further volume tier') END
	FROM cur c
	LEFT JOIN LATERAL (
		SELECT u.q, u.p
		FROM unnest(c.mins, c.prices) AS u(q, p)
		WHERE u.q > c.quantity AND u.p < c.cur_price AND c.blocked IS NULL
		ORDER BY u.q, u.p
		LIMIT 1) nx ON true
	ORDER BY c.n;
END
$$;
INSERT INTO upsell.volume_tiers (tenant_id, product_id, category, min_quantity, unit_price, percent_off, note) VALUES
	(1, 1, NULL, 9, 9.50, NULL, 't40v more'),		-- above the list price of 9.00
	(1, 2, NULL, 7, NULL, 33.333, 't40v more'),		-- 12.00 less a third, to the cent
	(1, NULL, 'coffee', 4, NULL, 5, 't40v more'),	-- replaced by 1's and 2's own
	(1, NULL, 'coffee', 8, NULL, 12.5, 't40v more'),
	(1, 3, NULL, 2, 1.95, NULL, 't40v more'),		-- replaces the filters' tier for 3
	(1, NULL, 'filters', 3, 1.90, NULL, 't40v more');	-- 4 (out of stock) has only these
INSERT INTO upsell.exclusions (tenant_id, product_id, note) VALUES (1, 2, 't40v');
WITH ids AS (SELECT unnest('{1,2,3,4,5,999}'::bigint[]) AS id),
carts AS (
	SELECT ARRAY[a.id] AS ids FROM ids a
	UNION ALL SELECT ARRAY[a.id, b.id] FROM ids a, ids b
	UNION ALL SELECT ARRAY[a.id, b.id, c.id] FROM ids a, ids b, ids c WHERE a.id < b.id AND b.id < c.id),
cases AS (
	SELECT c.ids, array_fill(q, ARRAY[cardinality(c.ids)]) AS units, o.t_only
	FROM carts c, generate_series(1, 13) q, (VALUES (false), (true)) o(t_only)
	UNION ALL
	-- quantities that differ line by line
	SELECT c.ids, ARRAY(SELECT 1 + (i * 5 + cardinality(c.ids)) % 13 FROM generate_subscripts(c.ids, 1) i), o.t_only
	FROM carts c, (VALUES (false), (true)) o(t_only)),
compared AS (
	SELECT x.ids, x.units, x.t_only,
		   ARRAY(SELECT o::text FROM upsell._tier_offers(1, x.ids, x.units, x.t_only) o) AS c_rows,
		   ARRAY(SELECT o::text FROM t40v.tier_offers_1_11(1, x.ids, x.units, x.t_only) o) AS sql_rows
	FROM cases x)
SELECT count(*) AS cases, count(*) FILTER (WHERE c_rows IS DISTINCT FROM sql_rows) AS differ,
	   sum(cardinality(c_rows)) AS rows_compared,
	   count(*) FILTER (WHERE array_to_string(c_rows, ' ') LIKE '%add % more%') AS with_a_next_tier,
	   count(*) FILTER (WHERE array_to_string(c_rows, ' ') LIKE '%excluded by the merchant%') AS excluded,
	   count(*) FILTER (WHERE array_to_string(c_rows, ' ') LIKE '%out of stock%') AS out_of_stock
FROM compared;
-- a line where they differed would show here
WITH x AS (SELECT '{1,2,3}'::bigint[] AS ids, '{9,6,2}'::int[] AS units)
SELECT ARRAY(SELECT o::text FROM upsell._tier_offers(1, x.ids, x.units) o)
	   IS NOT DISTINCT FROM ARRAY(SELECT o::text FROM t40v.tier_offers_1_11(1, x.ids, x.units) o) AS same,
	   (SELECT array_agg(o.unit_price::text || ' ' || o.reason ORDER BY o.n) FROM upsell._tier_offers(1, x.ids, x.units) o) AS c_rows
FROM x;
-- a tier the merchant adds is priced at the next request (the cache's key
-- is drawn anew by the change), and one removed is gone
INSERT INTO upsell.volume_tiers (tenant_id, product_id, min_quantity, unit_price, note) VALUES (1, 3, 20, 1.50, 't40v more');
SELECT next_quantity, new_unit_price FROM upsell._tier_offers(1, '{3}', '{15}');
DELETE FROM upsell.volume_tiers WHERE note = 't40v more' AND min_quantity = 20;
SELECT next_quantity, new_unit_price, reason FROM upsell._tier_offers(1, '{3}', '{15}');
DELETE FROM upsell.volume_tiers WHERE note = 't40v more';
DELETE FROM upsell.exclusions WHERE note = 't40v';
-- what the callers check is checked here too
SELECT * FROM upsell._tier_offers(1, '{1,2}', '{1}');
SELECT * FROM upsell._tier_offers(1, '{1}', '{0}');
SELECT * FROM upsell._tier_offers(1, '{1}', NULL);
SELECT count(*) FROM upsell._tier_offers(1, '{NULL,1}', '{1,1}');
SELECT count(*) FROM upsell._tier_offers(NULL, '{1}', '{1}');

-- unknown and unpriced products give no rows; a NULL product is an error
SELECT count(*) FROM upsell.quantity_offer(999, 1, 1);
SELECT count(*) FROM upsell.quantity_offer(5, 1, 1);
SELECT count(*) FROM upsell.quantity_offer(NULL, 1, 1);

-- bad input
SELECT * FROM upsell.quantity_offer(1, 0, 1);
SELECT * FROM upsell.quantity_offer(1, -2, 1);
SELECT * FROM upsell.quantity_offer(1, NULL, 1);
SELECT * FROM upsell.quantity_offer(1, 1);
SELECT * FROM upsell.upgrade_candidates(1, 3, 1.5);
\set VERBOSITY terse
INSERT INTO upsell.volume_tiers (tenant_id, product_id, min_quantity, unit_price, percent_off) VALUES (1, 1, 20, 5, 10);
INSERT INTO upsell.volume_tiers (tenant_id, product_id, min_quantity) VALUES (1, 1, 20);
INSERT INTO upsell.volume_tiers (tenant_id, product_id, category, min_quantity, unit_price) VALUES (1, 1, 'coffee', 20, 5);
INSERT INTO upsell.volume_tiers (tenant_id, product_id, min_quantity, percent_off) VALUES (1, 1, 20, 100);
INSERT INTO upsell.volume_tiers (tenant_id, product_id, min_quantity, unit_price) VALUES (1, 1, 0, 5);
INSERT INTO upsell.volume_tiers (tenant_id, product_id, min_quantity, unit_price) VALUES (1, 1, 20, -5);
INSERT INTO upsell.volume_tiers (tenant_id, product_id, min_quantity, unit_price) VALUES (1, 1, 3, 8.00);
INSERT INTO upsell.volume_tiers (tenant_id, category, min_quantity, unit_price) VALUES (1, 'filters', 10, 1.00);

\set VERBOSITY default
-- merchants' tiers survive pg_dump
SELECT 'upsell.volume_tiers'::regclass = ANY (extconfig) AS dumped FROM pg_extension WHERE extname = 'upsell';

DELETE FROM upsell.volume_tiers WHERE tenant_id IN (1, 2);
SET client_min_messages = warning;
DROP SCHEMA t40v CASCADE;
