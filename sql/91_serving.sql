-- The C serving path of the funnel stages: the cart's complements equal the
-- plain SQL noisy-OR on real baskets (Groceries), and the per-backend cache
-- of the merchant's rules follows every change: in the same transaction,
-- after a rollback, from another session, and after a refresh.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set ECHO none
\i scripts/load_groceries.sql
\set ECHO all
CREATE TABLE groceries.catalog AS
SELECT item_id, (1 + item_id % 7)::numeric AS price, item_id % 13 <> 0 AS in_stock
FROM groceries.items;
SELECT upsell.register_orders('groceries.lines', 'order_id', 'item_id');
SELECT upsell.register_products('groceries.catalog', 'item_id', price => 'price', in_stock => 'in_stock');
CALL upsell.refresh();
RESET client_min_messages;

-- 200 carts of 1 to 5 items drawn from the 100 best sellers
CREATE TEMP TABLE carts AS
SELECT c, ARRAY(SELECT m.product_id FROM upsell.product_popularity m
				WHERE m.popularity_rank <= 100
				ORDER BY hashint4(m.product_id::int * 31 + c) LIMIT 1 + c % 5) AS items
FROM generate_series(1, 200) c;

-- complements only, as many as the evidence gives: the other tactics weigh
-- nothing and so come after every complement
INSERT INTO upsell.stage_settings (stage, max_offers, type_weights)
VALUES ('cart', 12, '{"upgrade": 0, "gap_filler": 0, "quantity_tier": 0}');
WITH served AS (
	SELECT c.c, array_agg(o.product_ids[1] ORDER BY o."rank") AS ids
	FROM carts c, upsell.cart_offers(c.items) o
	WHERE o.reason = 'bought together with the cart'
	GROUP BY c.c),
plain AS (
	SELECT c.c, array_agg(e.other_id ORDER BY e.score DESC, e.other_id) AS ids
	FROM carts c,
		 LATERAL (SELECT p.other_id, round((1 - exp(sum(ln(1 - least(p.score, 0.999999)))))::numeric, 9) AS score
				  FROM upsell.pair_model p
				  JOIN upsell.product_model m ON m.tenant_id = p.tenant_id AND m.product_id = p.other_id
				  WHERE p.tenant_id = 0 AND p.product_id = ANY (c.items) AND p.other_id <> ALL (c.items)
					AND m.in_stock
				  GROUP BY p.other_id
				  ORDER BY 2 DESC, 1
				  LIMIT 12) e
	GROUP BY c.c)
SELECT count(*) AS carts,
	   count(*) FILTER (WHERE s.ids IS NOT DISTINCT FROM p.ids) AS same_complements,
	   count(*) FILTER (WHERE cardinality(s.ids) = 12) AS full_carts
FROM carts c
LEFT JOIN served s USING (c)
LEFT JOIN plain p USING (c);
DELETE FROM upsell.stage_settings;

-- every cart fills its 6 slots (bestsellers when the evidence runs out)
SELECT min(n) AS fewest_offers, max(n) AS most_offers
FROM (SELECT count(o.*) AS n FROM carts c LEFT JOIN LATERAL upsell.cart_offers(c.items) o ON true
	  GROUP BY c.c) x;

-- the product page gives what its model stores, best first, in stock only
SELECT bool_and(m.in_stock) AS offered_in_stock, count(DISTINCT o.product_id) AS pages
FROM upsell.product_page_offers o
JOIN upsell.product_model m ON m.tenant_id = 0 AND m.product_id = ANY (o.product_ids)
WHERE o.product_id IN (SELECT product_id FROM upsell.product_popularity WHERE popularity_rank <= 50);

-- the cart {whole milk}: its first offer, then excluded in this transaction
CREATE TEMP TABLE milk AS SELECT item_id FROM groceries.items WHERE name = 'whole milk';
CREATE TEMP TABLE first_offer AS
SELECT o.product_ids[1] AS id FROM milk, upsell.cart_offers(ARRAY[milk.item_id::bigint]) o
WHERE o."rank" = 1;
BEGIN;
INSERT INTO upsell.exclusions (product_id) SELECT id FROM first_offer;
SELECT count(*) AS still_offered
FROM milk, upsell.cart_offers(ARRAY[milk.item_id::bigint]) o, first_offer f
WHERE f.id = ANY (o.product_ids);
ROLLBACK;
-- ... and back after the rollback
SELECT o.product_ids[1] = f.id AS first_again
FROM milk, upsell.cart_offers(ARRAY[milk.item_id::bigint]) o, first_offer f
WHERE o."rank" = 1;

-- another session pins an offer and excludes the first offer: this
-- session's cache follows at its next request
CREATE EXTENSION dblink;
SELECT dblink_connect('other', format('dbname=%s port=%s host=%s', current_database(),
	current_setting('port'), split_part(current_setting('unix_socket_directories'), ',', 1)));
SELECT dblink_exec('other', format(
	'INSERT INTO upsell.offers (stage, product_ids, priority, reason) VALUES (''cart'', ''{%s}'', 1, ''pinned elsewhere''); '
	'INSERT INTO upsell.exclusions (product_id) VALUES (%s)',
	(SELECT max(item_id) FROM groceries.catalog WHERE in_stock), (SELECT id FROM first_offer)));
SELECT o."rank", o.offer_type, o.reason, f.id = ANY (o.product_ids) AS excluded_one
FROM milk, upsell.cart_offers(ARRAY[milk.item_id::bigint]) o, first_offer f
WHERE o."rank" = 1 OR f.id = ANY (o.product_ids);
SELECT dblink_exec('other', 'DELETE FROM upsell.offers; DELETE FROM upsell.exclusions');
SELECT dblink_disconnect('other');
DROP EXTENSION dblink;
SELECT o.product_ids[1] = f.id AS first_again
FROM milk, upsell.cart_offers(ARRAY[milk.item_id::bigint]) o, first_offer f
WHERE o."rank" = 1;

-- a refresh that takes the first offer out of stock: the cache follows
UPDATE groceries.catalog SET in_stock = false WHERE item_id = (SELECT id FROM first_offer);
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;
SELECT count(*) AS out_of_stock_offered
FROM milk, upsell.cart_offers(ARRAY[milk.item_id::bigint]) o, first_offer f
WHERE f.id = ANY (o.product_ids);

-- the cart's first gap filler against upsell.gap_fillers() for the same
-- carts (free shipping at 20): the cart stage weighs relevance by the 24
-- best complements only, gap_fillers() by all of them; and it adds on: where
-- gap_fillers()'s best adds more than half the cart's value, the cart
-- penalises it (or offers "you are X away" with an add-on instead), so
-- compare where it adds on naturally
INSERT INTO upsell.thresholds (kind, amount, reward) VALUES ('free_shipping', 20, 'free shipping');
INSERT INTO upsell.stage_settings (stage, max_offers, type_weights)
VALUES ('cart', 1, '{"gap_filler": 100}');
SELECT count(*) AS carts_below_threshold,
	   count(*) FILTER (WHERE g.added <= (20 - t.gap) / 2) AS natural_add_on,
	   count(*) FILTER (WHERE g.added <= (20 - t.gap) / 2 AND o.product_ids = g.product_ids) AS same_first_gap_filler,
	   count(*) FILTER (WHERE g.added > (20 - t.gap) / 2 AND o.reason ~ '^you are .* away from free shipping') AS says_how_far
FROM carts c
JOIN LATERAL upsell.gap_fillers(c.items, k => 1) g ON true
JOIN LATERAL upsell.threshold_gap(c.items, NULL::int[]) t ON true
LEFT JOIN LATERAL upsell.cart_offers(c.items) o ON true;
DELETE FROM upsell.stage_settings;
DELETE FROM upsell.thresholds;

-- a role reads offers with SELECT on the extension's relations, and is
-- refused without
CREATE ROLE regress_upsell_reader;
GRANT USAGE ON SCHEMA upsell TO regress_upsell_reader;
SELECT item_id AS milk_id FROM milk \gset
SET ROLE regress_upsell_reader;
SELECT count(*) FROM upsell.cart_offers(ARRAY[:milk_id]::bigint[]);
RESET ROLE;
GRANT SELECT ON ALL TABLES IN SCHEMA upsell TO regress_upsell_reader;
SET ROLE regress_upsell_reader;
SELECT count(*) AS offers FROM upsell.cart_offers(ARRAY[:milk_id]::bigint[]);
RESET ROLE;
REVOKE ALL ON ALL TABLES IN SCHEMA upsell FROM regress_upsell_reader;
REVOKE ALL ON SCHEMA upsell FROM regress_upsell_reader;
DROP OWNED BY regress_upsell_reader;
DROP ROLE regress_upsell_reader;

-- a product the models do not know is served around, and the reasons say so
SELECT * FROM upsell.cart_offers('{-1}');
-- bad input: a NULL id, a bad quantity
SELECT * FROM upsell.cart_offers('{1,NULL}');
SELECT * FROM upsell.cart_offers('{1,2}', '{1,0}');
SELECT * FROM upsell.cart_offers('{1,2}', NULL, 5);
SELECT * FROM upsell._merge_offers('checkout', 0, '{}', NULL, '{}', NULL, NULL);

DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA groceries CASCADE;
