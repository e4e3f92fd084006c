-- The electronics shop registered twice -- flat tables and the Shopify
-- documents made from them (scripts/load_electronics_shopify.sql: refunds,
-- a cancelled and a test order, re-delivered webhooks, GraphQL ids,
-- malformed documents) -- gives the same offers at every stage.  December
-- 2019 keeps the test short; the demo compares the whole year.  The shop
-- stays registered for 17_offers_json, which drops it.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
\set ECHO none
\i scripts/load_electronics.sql
DELETE FROM shop.order_lines WHERE ordered_at < '2019-12-01';
\i scripts/load_electronics_shopify.sql
\set ECHO all

-- every offer of every stage, ids as flat ids: pg_temp.all_offers(base)
\set ECHO none
\i scripts/electronics_all_offers.sql
\set ECHO all

SELECT upsell.register_orders('shop.order_lines', order_id => 'order_id', product_id => 'product_id',
	customer_id => 'customer', ordered_at => 'ordered_at', quantity => 'quantity', unit_price => 'unit_price');
SELECT upsell.register_products('shop.products', product_id => 'product_id', price => 'price',
	category => 'category', variant_group => 'variant_group', in_stock => 'in_stock', title => 'title');
CALL upsell.refresh();
CREATE TEMP TABLE flat AS SELECT * FROM pg_temp.all_offers(0);

SELECT upsell.register_shopify_orders('shop.order_webhooks', 'payload');
SELECT upsell.register_shopify_products('shop.product_payloads', 'payload');
CALL upsell.refresh();
CREATE TEMP TABLE json AS SELECT * FROM pg_temp.all_offers(40000000000);

-- the same lines, and what the documents hold that does not count
SELECT (SELECT count(*) FROM shop.order_lines) AS flat_lines, count(*) AS json_lines,
	   sum(quantity) = (SELECT sum(quantity) FROM shop.order_lines) AS same_quantity,
	   sum(quantity * unit_price) = (SELECT sum(quantity * unit_price) FROM shop.order_lines) AS same_revenue
FROM upsell.order_lines;
SELECT * FROM upsell.shopify_skips() ORDER BY source, reason;

-- the same offers: every stage has some, none differs
SELECT stage, offer_type, count(*) FROM json GROUP BY 1, 2 ORDER BY 1, 2;
(SELECT 'only flat' AS side, * FROM flat EXCEPT ALL SELECT 'only flat', * FROM json)
UNION ALL
(SELECT 'only json', * FROM json EXCEPT ALL SELECT 'only json', * FROM flat)
ORDER BY 2, 3, 4, 5;

-- the Shopify registration and its models stay for 17_offers_json
RESET client_min_messages;
