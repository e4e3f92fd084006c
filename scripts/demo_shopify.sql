-- The demo shop once more, as a Shopify app keeps it: order webhooks and
-- product payloads (load_electronics_shopify.sql).  Registered as
-- documents, it gives the same offers as the flat tables, and the widgets'
-- JSON.  Runs after demo_setup.sql (the flat registration, refreshed), and
-- registers the flat tables again at the end: the README's examples on the
-- demo shop use their ids.
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
\o /dev/null
\i scripts/electronics_all_offers.sql
CREATE TEMP TABLE flat AS SELECT * FROM pg_temp.all_offers(0);
\i scripts/load_electronics_shopify.sql
SELECT upsell.register_shopify_orders('shop.order_webhooks', 'payload');
SELECT upsell.register_shopify_products('shop.product_payloads', 'payload');
CALL upsell.refresh();
CREATE TEMP TABLE json AS SELECT * FROM pg_temp.all_offers(40000000000);
\o

\echo
\echo '== The same shop as Shopify documents (upsell.register_shopify_orders / register_shopify_products)'
SELECT count(*) AS webhooks, count(DISTINCT payload->'id') AS orders FROM shop.order_webhooks;
SELECT source, reason, documents, line_items FROM upsell.shopify_skips() ORDER BY source, reason;
SELECT (SELECT count(*) FROM flat) AS offers_flat, (SELECT count(*) FROM json) AS offers_json,
	   (SELECT count(*) FROM (SELECT * FROM flat INTERSECT ALL SELECT * FROM json) x) AS identical;

\echo '== JSON for the iPhone page widget (upsell.offers_json)'
SELECT (o ->> 'rank')::int AS "rank", o ->> 'type' AS type, i ->> 'variant_id' AS variant_id,
	   i ->> 'title' AS title, i ->> 'price' AS price, o ->> 'reason' AS reason
FROM jsonb_array_elements(upsell.offers_json('product_page', '{"variant_id": 40000000019}') -> 'offers') o,
	 jsonb_array_elements(o -> 'items') i
ORDER BY 1;
SELECT jsonb_pretty(upsell.offers_json('product_page', '{"variant_id": 40000000019}') -> 'offers' -> 1) AS "second offer, as the widget gets it";

\echo '== The flat tables registered again (scripts/demo_register.sql): the README''s examples use their ids'
SET client_min_messages = warning;
\o /dev/null
\ir demo_register.sql
CALL upsell.refresh();
\o
