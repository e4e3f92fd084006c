-- Carts registration and abandoned-cart offers on the crafted coffee shop
-- (test/data/post_purchase.sql): machines 3 (300), 4 pro (500), 7 budget (200)
-- share the variant group "espresso".
\set VERBOSITY terse
\i test/data/post_purchase.sql

-- before registration
SELECT * FROM upsell.abandoned_cart_offers(1);
SELECT to_regclass('upsell.carts') IS NULL AS no_carts_view_yet;

CREATE TABLE pp.carts (cart text, shopper int, item int, qty int, added timestamptz, done timestamptz);
INSERT INTO pp.carts VALUES
	('A', 100, 4, 1, '2024-04-20 10:00', NULL),
	('B', 101, 3, 1, '2024-04-20 09:00', NULL), ('B', 101, 1, 2, '2024-04-20 10:30', NULL),
	('C', 102, 3, 1, '2024-04-20 09:00', '2024-04-20 09:30'),
	('D', 103, 3, 1, '2024-04-20 11:30', NULL),
	('E', 103, 8, 1, '2024-04-20 09:00', NULL);
SELECT upsell.register_carts('pp.carts', 'cart', 'shopper', 'item', 'qty', 'added', 'done');
SELECT * FROM upsell.carts ORDER BY cart_id, product_id;
-- text cart ids become upsell.order_key(id)
SELECT count(*) AS lines, bool_and(c.cart_id = upsell.order_key(p.cart)) AS keys_match
FROM pp.carts p JOIN upsell.carts c ON c.product_id = p.item AND c.added_at = p.added;

-- A: the pro machine (500) idle 2 hours: the plain machine (300) is in
-- [0.5 x 500, 500), but customer 100 owns it (a durable: never offered
-- again, offered until 1.8); the budget one (200) only with a lower ratio.
-- No complement: bestsellers fill the slots as the fallback (tea, filter
-- papers, frother), not the budget machine (a substitute of the cart's) nor
-- the coffee customer 100 owns (not due until Apr 30)
SELECT * FROM upsell.abandoned_cart_offers(upsell.order_key('A'), at => '2024-04-20 12:00');
SELECT * FROM upsell.abandoned_cart_offers(upsell.order_key('A'), min_price_ratio => 0.3, at => '2024-04-20 12:00');
-- B: machine and coffee: downsell of the machine first, then complements of the
-- cart (frother from the machine, filters from the coffee); nothing cheaper
-- than coffee in [5, 10)
SELECT * FROM upsell.abandoned_cart_offers(upsell.order_key('B'), 5, at => '2024-04-20 12:00');
SELECT rank, product_id FROM upsell.abandoned_cart_offers(upsell.order_key('B'), 1, at => '2024-04-20 12:00');
-- an excluded alternative is skipped
INSERT INTO upsell.exclusions (product_id) VALUES (7);
SELECT rank, kind, product_id FROM upsell.abandoned_cart_offers(upsell.order_key('B'), 5, at => '2024-04-20 12:00');
DELETE FROM upsell.exclusions;
-- C checked out, D active 30 minutes ago, unknown cart: nothing
SELECT count(*) AS checked_out FROM upsell.abandoned_cart_offers(upsell.order_key('C'), at => '2024-04-20 12:00');
SELECT count(*) AS active FROM upsell.abandoned_cart_offers(upsell.order_key('D'), at => '2024-04-20 12:00');
-- (three offers: the descaler (6) customer 103 owns, a durable, is not
-- one of them; a bestseller takes its slot)
SELECT count(*) AS idle_after_20_min FROM upsell.abandoned_cart_offers(upsell.order_key('D'), idle_after => '20 minutes', at => '2024-04-20 12:00');
-- W: customer 105's idle cart of coffee: the machine (3) and the frother
-- (5) they own are durables, not offered again (until 1.8 the win-back
-- offers were exactly what they owned): tea, then the bestsellers left (the
-- other coffee (2) is a substitute of the cart's, the mug out of stock)
INSERT INTO pp.carts VALUES ('W', 105, 1, 1, '2024-04-20 10:00', NULL);
SELECT product_id, upsell.is_consumable(product_id) AS consumable
FROM upsell.purchase_interval_model WHERE customer_id = 105 ORDER BY 1;
SELECT * FROM upsell.abandoned_cart_offers(upsell.order_key('W'), 5, at => '2024-04-20 12:00');
-- Every idle cart's mail fills its k slots, bestsellers as the fallback once
-- the alternatives and complements run out (without it A's mail was empty,
-- D's held two offers, E's and W's one: what their customers own is left
-- out): none is a cart item, a product the cart's customer may not be
-- offered again (a durable, a consumable not due within 7 days), or a
-- substitute of a cart item (but the cheaper alternatives, the downsell's
-- tactic)
SELECT v.cart, count(o.product_id) AS offers,
	   count(*) FILTER (WHERE o.kind = 'popular') AS fallbacks,
	   count(*) FILTER (WHERE o.product_id = ANY (c.items)) AS cart_items,
	   count(*) FILTER (WHERE EXISTS (
		   SELECT FROM upsell.purchase_interval_model i
		   WHERE i.customer_id = c.customer AND i.product_id = o.product_id
			 AND NOT (upsell.is_consumable(i.product_id) AND i.next_due <= '2024-04-27 12:00'))) AS owned,
	   count(*) FILTER (WHERE o.kind <> 'downsell' AND upsell.is_substitute(0, o.product_id, c.items)) AS substitutes
FROM (VALUES ('A'), ('B'), ('D'), ('E'), ('W')) v(cart)
CROSS JOIN LATERAL (SELECT max(c.customer_id) AS customer, array_agg(c.product_id) AS items
					FROM upsell.carts c WHERE c.cart_id = upsell.order_key(v.cart)) c
LEFT JOIN LATERAL upsell.abandoned_cart_offers(upsell.order_key(v.cart), 3, idle_after => '20 minutes',
											   at => '2024-04-20 12:00') o ON true
GROUP BY v.cart ORDER BY v.cart;
-- nor is a fallback one the merchant excludes: tea, A's first, is skipped
INSERT INTO upsell.exclusions (product_id) VALUES (9);
SELECT rank, kind, product_id FROM upsell.abandoned_cart_offers(upsell.order_key('A'), at => '2024-04-20 12:00');
DELETE FROM upsell.exclusions;
-- nor one without a price (a mail shows it): tea unpriced, as of a refresh
UPDATE pp.products SET price = NULL WHERE id = 9;
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;
SELECT rank, kind, product_id FROM upsell.abandoned_cart_offers(upsell.order_key('A'), at => '2024-04-20 12:00');
UPDATE pp.products SET price = 6 WHERE id = 9;
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;
-- a cart checked out at a typo's time (2204 for 2024) is checked out: no
-- win-back mail (the time reads as -infinity, not as none)
INSERT INTO pp.carts VALUES ('X', 101, 1, 1, '2024-04-20 09:00', '2204-04-20 09:30');
SELECT count(*) AS offers, (SELECT checked_out_at FROM upsell.carts WHERE cart_id = upsell.order_key('X')) AS checked_out_at
FROM upsell.abandoned_cart_offers(upsell.order_key('X'), at => '2024-04-20 12:00');
DELETE FROM pp.carts WHERE cart IN ('W', 'X');
SELECT count(*) AS unknown FROM upsell.abandoned_cart_offers(42, at => '2024-04-20 12:00');
-- a negative idle time would serve carts still being filled
SELECT count(*) FROM upsell.abandoned_cart_offers(upsell.order_key('D'), idle_after => '-5 days', at => '2024-04-20 12:00');
-- E: an out-of-stock mug, bought once, with tea: tea (a pair seen once is all
-- the evidence a product in fewer than 20 orders has), then two bestsellers
SELECT count(*) AS mug FROM upsell.abandoned_cart_offers(upsell.order_key('E'), at => '2024-04-20 12:00');

-- integer cart ids, re-registration replaces the previous one
CREATE TABLE pp.carts2 (id bigint, product bigint, added date);
INSERT INTO pp.carts2 VALUES (7, 4, '2024-04-01');
SELECT upsell.register_carts('pp.carts2', 'id', NULL, 'product', NULL, 'added', NULL);
SELECT * FROM upsell.carts;
-- (a cart without a customer: nothing owned, coffee the bestseller is a fallback)
SELECT rank, kind, product_id, replaces FROM upsell.abandoned_cart_offers(7, at => '2024-04-20');

-- a timestamp without a zone is a time of the zone the carts were registered
-- in, for every reader: registered from Los Angeles, cart 8, last added at
-- 11:30 there, has been idle for half an hour at 12:00 there, asked from
-- this session (UTC) and from one in Honolulu (cast in that session's zone,
-- 11:30 was 14:30 in Los Angeles: not idle yet)
CREATE TABLE pp.carts3 (id bigint, product bigint, added timestamp);
INSERT INTO pp.carts3 VALUES (8, 4, '2024-04-20 11:30');
SET TimeZone = 'America/Los_Angeles';
SELECT upsell.register_carts('pp.carts3', 'id', NULL, 'product', NULL, 'added', NULL);
SET TimeZone = 'UTC';
SELECT time_zone FROM upsell.cart_source;
SELECT count(*) > 0 AS abandoned FROM upsell.abandoned_cart_offers(8, idle_after => '20 minutes',
	at => '2024-04-20 12:00 America/Los_Angeles');
SET TimeZone = 'Pacific/Honolulu';
SELECT count(*) > 0 AS abandoned FROM upsell.abandoned_cart_offers(8, idle_after => '20 minutes',
	at => '2024-04-20 12:00 America/Los_Angeles');
SET TimeZone = 'UTC';
SELECT added_at FROM upsell.carts;

-- bad input
SELECT upsell.register_carts('pp.carts2', 'nope', NULL, 'product', NULL, 'added', NULL);
SELECT upsell.register_carts('pp.carts', 'cart', 'shopper', 'item', 'qty', 'cart', 'done');
SELECT upsell.register_carts('pp.carts', 'cart', 'shopper', 'item', 'qty', NULL, 'done');
SELECT upsell.register_carts('pp.carts', 'cart', 'shopper', 'added', 'qty', 'added', 'done');
SELECT * FROM upsell.carts;
SELECT * FROM upsell.abandoned_cart_offers(NULL);
SELECT * FROM upsell.abandoned_cart_offers(7, -1);
SELECT * FROM upsell.abandoned_cart_offers(7, min_price_ratio => 1);
SELECT * FROM upsell.abandoned_cart_offers(7, min_price_ratio => -0.5);
SELECT * FROM upsell.abandoned_cart_offers(7, tenant_id => 3);

-- nor by the thank-you page of customer 100's next coffee order: not the
-- machine (3) they own, as a complement, a bestseller or a restock (until
-- 1.8 the machine came first, "goes with your order")
SELECT offer_type, product_ids, reason FROM upsell.post_purchase_offers('{1}', 100, at => '2024-04-30');
SELECT count(*) FILTER (WHERE 3 = ANY (product_ids)) AS machine_offered
FROM upsell.post_purchase_offers('{}', 100, at => '2024-04-30');

\i test/data/post_purchase_teardown.sql
DROP SCHEMA pp CASCADE;
