-- The funnel stages: offers of one shape per page, merchant offers first,
-- exclusions, stock, one offer per product, weights, limits, tenants and
-- experiment variants.
\set SHOW_CONTEXT never
CREATE SCHEMA fun;
CREATE TABLE fun.products (shop int, id int, price numeric, cat text, grp text, stock boolean);
INSERT INTO fun.products VALUES
	(1, 1, 500, 'phone', 'phone', true),	-- phone
	(1, 2, 600, 'phone', 'phone', true),	-- phone pro: its upgrade
	(1, 3, 10, 'acc', 'cable', true),		-- cable
	(1, 4, 30, 'acc', 'case', true),		-- case
	(1, 5, 25, 'acc', 'charger', true),	-- charger
	(1, 6, 50, 'audio', 'headphones', true),
	(1, 7, 8, 'acc', 'protector', false),	-- out of stock
	(2, 1, 90, 'x', 'a', true), (2, 3, 9, 'x', 'b', true), (2, 8, 20, 'x', 'c', true);
CREATE TABLE fun.lines (shop int, order_id int, product_id int, customer int, at timestamptz, qty int, price numeric);
-- tenant 1: phone with cable (40 orders), case (20), charger (10), protector (30);
-- customers 1..15 bought a phone and later the pro; customer 99 buys a
-- cable every 30 days
INSERT INTO fun.lines
SELECT 1, o, p, 100 + o, date_trunc('day', now()) - interval '60 days' + o * interval '1 hour', 1, 0
FROM generate_series(1, 40) o, (VALUES (1), (3)) v(p)
UNION ALL SELECT 1, o, p, 100 + o, date_trunc('day', now()) - interval '50 days', 1, 0
FROM generate_series(41, 60) o, (VALUES (1), (4)) v(p)
UNION ALL SELECT 1, o, p, 100 + o, date_trunc('day', now()) - interval '45 days', 1, 0
FROM generate_series(61, 70) o, (VALUES (1), (5)) v(p)
UNION ALL SELECT 1, o, p, 100 + o, date_trunc('day', now()) - interval '40 days', 1, 0
FROM generate_series(71, 100) o, (VALUES (1), (7)) v(p)
UNION ALL SELECT 1, 200 + c, 1, c, date_trunc('day', now()) - interval '80 days', 1, 0 FROM generate_series(1, 15) c
UNION ALL SELECT 1, 300 + c, 2, c, date_trunc('day', now()) - interval '20 days', 1, 0 FROM generate_series(1, 15) c
UNION ALL SELECT 1, 400 + n, 3, 99, date_trunc('day', now()) - interval '1 day' - (3 - n) * interval '30 days', 1, 0
FROM generate_series(0, 3) n
-- tenant 2: product 1 goes with 8, never with 3
UNION ALL SELECT 2, 1000 + o, p, 500, date_trunc('day', now()) - interval '10 days', 1, 0
FROM generate_series(1, 10) o, (VALUES (1), (8)) v(p)
UNION ALL SELECT 2, 1100, 3, 501, date_trunc('day', now()) - interval '10 days', 1, 0;
UPDATE fun.lines SET price = p.price FROM fun.products p WHERE p.shop = lines.shop AND p.id = lines.product_id;

SELECT upsell.register_orders('fun.lines', 'order_id', 'product_id', customer_id => 'customer',
	ordered_at => 'at', quantity => 'qty', unit_price => 'price', tenant_id => 'shop');
SELECT upsell.register_products('fun.products', 'id', price => 'price', category => 'cat',
	variant_group => 'grp', in_stock => 'stock', tenant_id => 'shop');
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;

-- the stage views serve the tenant bound to the session: with orders
-- registered per tenant, none bound is an error, not every tenant's rows
SELECT count(*) FROM upsell.product_page_offers WHERE product_id = 1;
SET upsell.tenant_id = 1;
-- product page: complements and the upgrade, interleaved; never the
-- out-of-stock protector
SELECT product_id, "rank", offer_type, product_ids, round(score::numeric, 3) AS score, reason
FROM upsell.product_page_offers WHERE tenant_id = 1 AND product_id = 1 ORDER BY "rank";
-- the other tenant's page knows nothing of tenant 1 (8 goes with 1 there,
-- and its bestseller 3 fills a slot: its category goes together)
SET upsell.tenant_id = 2;
SELECT product_id, "rank", offer_type, product_ids FROM upsell.product_page_offers
WHERE product_id = 1 ORDER BY "rank";
-- a session bound to tenant 2 serves no other
SELECT * FROM upsell.product_page_offers(1, 1);
SELECT * FROM upsell.cart_offers('{1}', NULL, 1);
SELECT * FROM upsell.recommend_for_cart('{1}', 5, 1);
SET upsell.tenant_id = 1;

-- merchant offers come first, by priority, while active and triggered
INSERT INTO upsell.offers (tenant_id, stage, trigger_product_id, product_ids, discount, priority, reason)
VALUES (1, 'product_page', 1, '{6}', 0.15, 1, 'headphones 15% off with a phone');
INSERT INTO upsell.offers (tenant_id, stage, trigger_category, product_ids, priority)
VALUES (1, 'product_page', 'phone', '{5,3}', 5);
INSERT INTO upsell.offers (tenant_id, stage, product_ids, priority, active_to)
VALUES (1, 'product_page', '{4}', 9, now() - interval '1 day');	-- expired
INSERT INTO upsell.offers (tenant_id, stage, product_ids, priority)
VALUES (2, 'product_page', '{8}', 9);							-- another tenant
SELECT "rank", offer_type, product_ids, discount, reason FROM upsell.product_page_offers
WHERE tenant_id = 1 AND product_id = 1 ORDER BY "rank";

-- exclusions apply at once: a product (the cable, also in a bundle), then a whole category
INSERT INTO upsell.exclusions (tenant_id, product_id) VALUES (1, 3);
SELECT "rank", offer_type, product_ids FROM upsell.product_page_offers
WHERE tenant_id = 1 AND product_id = 1 ORDER BY "rank";
INSERT INTO upsell.exclusions (tenant_id, category) VALUES (1, 'acc');
SELECT "rank", offer_type, product_ids FROM upsell.product_page_offers
WHERE tenant_id = 1 AND product_id = 1 ORDER BY "rank";
DELETE FROM upsell.exclusions;
DELETE FROM upsell.offers;

-- stage settings: at most 2 offers, and upgrades weigh more than complements
INSERT INTO upsell.stage_settings (tenant_id, stage, max_offers, type_weights)
VALUES (1, 'product_page', 2, '{"upgrade": 2}');
SELECT "rank", offer_type, product_ids FROM upsell.product_page_offers
WHERE tenant_id = 1 AND product_id = 1 ORDER BY "rank";
DELETE FROM upsell.stage_settings;

-- an experiment: the control shows nothing, the variant only upgrades
INSERT INTO upsell.experiments (experiment, tenant_id, started_at) VALUES ('page-test', 1, now() - interval '1 day');
INSERT INTO upsell.experiment_variants (experiment, variant, weight, offer_types)
VALUES ('page-test', 'control', 1, '{}'), ('page-test', 'upgrades', 1, '{upgrade}');
SELECT u.unit, upsell.assign('page-test', u.unit) AS variant,
	   (SELECT array_agg(o.offer_type || ':' || o.product_ids::text ORDER BY o."rank")
		FROM upsell.product_page_offers(1, 1, 'page-test', u.unit) o) AS offers
FROM (SELECT DISTINCT ON (upsell.assign('page-test', g::text)) g::text AS unit
	  FROM generate_series(1, 50) g ORDER BY upsell.assign('page-test', g::text), g) u
ORDER BY 2;
-- without an experiment the function gives what the view gives
SELECT array_agg(offer_type || ':' || product_ids::text ORDER BY "rank") = (
	SELECT array_agg(offer_type || ':' || product_ids::text ORDER BY "rank")
	FROM upsell.product_page_offers WHERE tenant_id = 1 AND product_id = 1) AS same
FROM upsell.product_page_offers(1, 1);
RESET upsell.tenant_id;

-- cart: complements, the gap to free shipping, a volume tier, never a
-- product twice and never a cart item (but more of one, as a tier); 2, the
-- next size of 1 (its variant group), closes the gap too, and comes as
-- that gap filler rather than as the upgrade
INSERT INTO upsell.thresholds (tenant_id, kind, amount, reward) VALUES (1, 'free_shipping', 540, 'free shipping');
INSERT INTO upsell.volume_tiers (tenant_id, product_id, min_quantity, percent_off) VALUES (1, 3, 3, 20);
SELECT "rank", offer_type, product_ids, discount, reason FROM upsell.cart_offers('{1,3}', '{1,1}', 1);
-- a product on two lines (Shopify's line properties) is one product of all
-- their units: 2 units of 3 are one short of its tier, as on one line, and
-- 3 units reach it (no tier left to offer); the value counts every line
SELECT (SELECT array_agg(o::text ORDER BY o."rank") FROM upsell.cart_offers('{1,3}', '{1,2}', 1) o)
	 = (SELECT array_agg(o::text ORDER BY o."rank") FROM upsell.cart_offers('{1,3,3}', '{1,1,1}', 1) o)
	   AS same_offers;
-- (no "add 2 more" of 3 to reach 540: at 4 units its tier's 8.00 a unit
-- leaves the cart at 532; until 1.8 that step, priced at the list's 10.00,
-- was offered as reaching it.  3 more, 5 units at 8.00, reach it exactly:
-- the best gap filler, it is the offer of product 3 instead of its tier)
SELECT "rank", offer_type, product_ids, reason FROM upsell.cart_offers('{3,1,3}', '{1,1,1}', 1)
WHERE offer_type IN ('quantity_tier', 'gap_filler');
SELECT count(*) FILTER (WHERE offer_type = 'quantity_tier') AS tiers
FROM upsell.cart_offers('{3,1,3}', '{2,1,1}', 1);
SELECT * FROM upsell.cart_offers('{3,3}', '{2147483647,1}', 1);
-- a cart-value merchant offer, pinned first
INSERT INTO upsell.offers (tenant_id, stage, min_cart_value, product_ids, reason)
VALUES (1, 'cart', 500, '{6}', 'big cart: headphones');
SELECT "rank", offer_type, product_ids, reason FROM upsell.cart_offers('{1,3}', NULL, 1);
SELECT count(*) FROM upsell.cart_offers('{3}', NULL, 1) WHERE offer_type = 'pinned';
-- bad input
SELECT * FROM upsell.cart_offers('{1,3}', '{1}', 1);
SELECT * FROM upsell.cart_offers('{1}', NULL, NULL);
-- an empty cart: bestsellers, and what alone reaches free shipping
SELECT "rank", offer_type, product_ids, reason FROM upsell.cart_offers('{}', NULL, 1);
DELETE FROM upsell.offers;
DELETE FROM upsell.thresholds;
DELETE FROM upsell.volume_tiers;

-- post-purchase: the order's complements, by order id or customer
SET upsell.tenant_id = 1;
SELECT order_id, customer_id, "rank", offer_type, product_ids
FROM upsell.post_purchase_offers WHERE tenant_id = 1 AND order_id = '41' ORDER BY "rank";
-- the regular cable buyer: the cable (3) is no consumable by the data (one
-- customer rebuys it), so no restock (until 1.8 every product bought had
-- one, a durable too), but the pitch to subscribe to what they buy monthly
SELECT "rank", offer_type, product_ids, reason
FROM upsell.post_purchase_offers('{6}', 99, 1, at => date_trunc('day', now()) + interval '25 days');
-- marked consumable by the merchant: the restock coming due (the
-- subscription pitch of the same product gives way to it)
INSERT INTO upsell.consumables (tenant_id, product_id, consumable) VALUES (1, 3, true);
SELECT "rank", offer_type, product_ids, reason
FROM upsell.post_purchase_offers('{6}', 99, 1, at => date_trunc('day', now()) + interval '25 days');
-- the request reads the customer's histories once (until 1.9 three times:
-- what they own, the restocks, the subscription pitch) and calls none of
-- these functions: the stage is C since 1.12, which reads what the
-- customer owns as _customer_owned does, the shop's zone by _shop_zone's
-- query, and the consumable rule as the SQL inlines it (until 1.9 the
-- scalar _consumable, planned anew by every request: most of the cost of
-- a customer on the thank-you page; until 1.12 _customer_owned's array,
-- passed over three times)
SET track_functions = 'all';
-- (counted within one transaction: the counts of earlier ones may not be
-- flushed yet)
BEGIN;
SELECT s.seq_scan + s.idx_scan AS history_reads_before
FROM pg_stat_xact_user_tables s WHERE s.relid = 'upsell.purchase_history_model'::regclass \gset
CREATE TEMP TABLE calls_before AS
SELECT f.funcid, f.calls FROM pg_stat_xact_user_functions f WHERE f.schemaname = 'upsell';
SELECT count(*) AS offers
FROM upsell.post_purchase_offers('{6}', 99, 1, at => date_trunc('day', now()) + interval '25 days');
SELECT s.seq_scan + s.idx_scan - :history_reads_before AS history_reads
FROM pg_stat_xact_user_tables s WHERE s.relid = 'upsell.purchase_history_model'::regclass;
SELECT f.funcname, f.calls - coalesce(b.calls, 0) AS calls
FROM pg_stat_xact_user_functions f LEFT JOIN calls_before b USING (funcid)
WHERE f.schemaname = 'upsell' AND f.funcname IN ('_consumable', '_consumable_rule', '_shop_zone', '_customer_owned')
  AND f.calls > coalesce(b.calls, 0)
ORDER BY 1;
ROLLBACK;
RESET track_functions;
DELETE FROM upsell.consumables WHERE tenant_id = 1;
-- a merchant's offer of next month, pinned at the time asked for (at), as
-- the restocks are: there in 25 days, not now
INSERT INTO upsell.offers (tenant_id, stage, product_ids, active_from, active_to, reason)
VALUES (1, 'post_purchase', '{2}', date_trunc('day', now()) + interval '20 days',
		date_trunc('day', now()) + interval '30 days', 'next month');
SELECT count(*) FILTER (WHERE offer_type = 'pinned') AS pinned_in_25_days
FROM upsell.post_purchase_offers('{6}', 99, 1, at => date_trunc('day', now()) + interval '25 days');
SELECT count(*) FILTER (WHERE offer_type = 'pinned') AS pinned_now
FROM upsell.post_purchase_offers('{6}', 99, 1);
DELETE FROM upsell.offers WHERE reason = 'next month';
SELECT count(*) AS orders_of_customer_99, count(DISTINCT order_id) FILTER (WHERE offer_type = 'subscription') AS with_pitch
FROM upsell.post_purchase_offers WHERE tenant_id = 1 AND customer_id = 99;
RESET upsell.tenant_id;

DELETE FROM upsell.experiment_variants;
DELETE FROM upsell.experiments;
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA fun CASCADE;
