-- Shopify payloads: order and product documents registered as they arrive
-- (webhooks, REST numbers or GraphQL gid strings), every rule on a small
-- hand-written shop, and errors for bad registrations.
\set SHOW_CONTEXT never

-- ids: numbers and gid strings are the same bigint; anything else is NULL
SELECT upsell.shopify_id('450789469') AS rest, upsell.shopify_id('gid://shopify/Order/450789469') AS graphql,
	   upsell.shopify_id('{"id": 450789469}'::jsonb -> 'id') AS json_number,
	   upsell.shopify_id('"gid://shopify/ProductVariant/7?x=1"'::jsonb) AS json_gid;
SELECT upsell.shopify_id(x) FROM unnest(ARRAY['', '-1', '1.5', 'gid://shopify/Order/', 'gid://other/Order/1',
	'99999999999999999999']) x;
SELECT upsell.shopify_id(x::jsonb) FROM unnest(ARRAY['1.5', '-1', 'true', 'null', '[1]', '{"id": 1}', '1e3']) x;

CREATE SCHEMA sh;
CREATE TABLE sh.webhooks (delivery int GENERATED ALWAYS AS IDENTITY, shop int, body jsonb);
INSERT INTO sh.webhooks (shop, body) VALUES
	-- REST ids; a refund of one of the two shirts
	(1, '{"id": 1001, "created_at": "2024-03-01T10:00:00-05:00", "updated_at": "2024-03-01T10:00:00-05:00",
		  "cancelled_at": null, "test": false, "currency": "USD", "customer": {"id": 501},
		  "line_items": [{"id": 1, "product_id": 21, "variant_id": 11, "quantity": 1, "price": "20.00", "sku": "TS-S"},
						 {"id": 2, "product_id": 21, "variant_id": 12, "quantity": 2, "price": "22.00", "sku": "TS-M"}],
		  "refunds": [{"id": 90, "refund_line_items": [{"id": 91, "line_item_id": 2, "quantity": 1}]}]}'),
	-- GraphQL ids for the same customer and variant; a custom item without product
	(1, '{"id": "gid://shopify/Order/1002", "created_at": "2024-03-02T10:00:00Z", "test": false, "currency": "USD",
		  "customer": {"id": "gid://shopify/Customer/501"},
		  "line_items": [{"id": "gid://shopify/LineItem/3", "product_id": "gid://shopify/Product/21",
						  "variant_id": "gid://shopify/ProductVariant/11", "quantity": 1, "price": "20.00"},
						 {"id": "gid://shopify/LineItem/4", "product_id": null, "variant_id": null,
						  "title": "Gift wrapping", "quantity": 1, "price": "3.00"}]}'),
	-- orders/create, then orders/updated an hour later without the hat: the update counts
	(1, '{"id": 1003, "created_at": "2024-03-03T10:00:00-05:00", "updated_at": "2024-03-03T10:00:00-05:00",
		  "customer": {"id": 502},
		  "line_items": [{"id": 5, "product_id": 21, "variant_id": 11, "quantity": 1, "price": "20.00"},
						 {"id": 6, "product_id": 23, "variant_id": 13, "quantity": 1, "price": "15.00"}]}'),
	(1, '{"id": 1003, "created_at": "2024-03-03T10:00:00-05:00", "updated_at": "2024-03-03T11:00:00-05:00",
		  "customer": {"id": 502},
		  "line_items": [{"id": 5, "product_id": 21, "variant_id": 11, "quantity": 1, "price": "20.00"}]}'),
	-- the same webhook delivered twice: counted once; a line without variant is its product
	(1, '{"id": 1004, "created_at": "2024-03-04T10:00:00-05:00", "customer": null,
		  "line_items": [{"id": 7, "product_id": 22, "variant_id": null, "quantity": 3, "price": "9.50"}]}'),
	(1, '{"id": 1004, "created_at": "2024-03-04T10:00:00-05:00", "customer": null,
		  "line_items": [{"id": 7, "product_id": 22, "variant_id": null, "quantity": 3, "price": "9.50"}]}'),
	-- a test order, a cancelled order
	(1, '{"id": 1005, "created_at": "2024-03-05T10:00:00-05:00", "test": true,
		  "line_items": [{"id": 8, "product_id": 21, "variant_id": 11, "quantity": 1, "price": "20.00"}]}'),
	(1, '{"id": 1006, "created_at": "2024-03-05T11:00:00-05:00", "cancelled_at": "2024-03-05T12:00:00-05:00",
		  "line_items": [{"id": 9, "product_id": 21, "variant_id": 11, "quantity": 1, "price": "20.00"}]}'),
	-- malformed: each a counted skip, never an error
	(1, '{"created_at": "2024-03-06T10:00:00-05:00", "line_items": []}'),
	(1, '{"id": 1008, "created_at": "2024-03-06T10:00:00-05:00", "line_items": "none"}'),
	(1, '{"id": 1009, "created_at": "March 6", "line_items": [{"id": 10, "variant_id": 11, "quantity": 1, "price": "20.00"}]}'),
	(1, '{"id": 1010, "created_at": "2024-03-06T10:00:00-05:00",
		  "line_items": [{"id": 11, "variant_id": 11, "quantity": "two", "price": "20.00"},
						 {"id": 12, "variant_id": 12, "quantity": 1, "price": {"amount": 22}},
						 {"id": 13, "variant_id": 13, "quantity": 1, "price": "15.00"},
						 {"id": 14, "variant_id": 14, "quantity": 2, "price": "5.00"}],
		  "refunds": [{"refund_line_items": [{"line_item_id": 13, "quantity": 1}, {"line_item_id": 14, "quantity": "?"}]}]}'),
	(1, '[1, 2, 3]'),
	(1, NULL),
	-- another shop
	(2, '{"id": 1001, "created_at": "2024-03-01T10:00:00+01:00", "line_items": [{"id": 1, "variant_id": 11, "quantity": 5, "price": "1.00"}]}');

-- bad registrations: clear errors, nothing recorded
SELECT upsell.register_shopify_orders('sh.webhooks', 'shop');
SELECT upsell.register_shopify_orders('sh.webhooks', 'nosuch');
SELECT upsell.register_shopify_orders('sh.webhooks', 'body', product_level => 'sku');
SELECT upsell.register_shopify_orders('sh.webhooks', NULL);
SELECT upsell.register_shopify_orders('sh.webhooks', 'body', tenant_column => 'body');
SELECT count(*) FROM upsell.order_source;

SELECT upsell.register_shopify_orders('sh.webhooks', 'body', tenant_column => 'shop');
SELECT kind, payload, order_id, product_id, customer_id, ordered_at, tenant_id FROM upsell.order_source;
-- every row and why it does not count
SELECT tenant_id, order_id, line_number, product_id, customer_id, ordered_at, quantity, unit_price, currency, skipped
FROM upsell.shopify_order_lines ORDER BY tenant_id, order_key NULLS FIRST, line_number NULLS FIRST, skipped, ordered_at NULLS FIRST;
SELECT tenant_id, order_key, order_id, product_id, customer_id, ordered_at, quantity, unit_price
FROM upsell.order_lines ORDER BY tenant_id, order_key, product_id;
SELECT * FROM upsell.shopify_skips(1) ORDER BY source, reason;
SELECT * FROM upsell.shopify_skips(2) ORDER BY source, reason;
SELECT upsell.shopify_skips();

-- products instead of variants
SELECT upsell.register_shopify_orders('sh.webhooks', 'body', tenant_column => 'shop', product_level => 'product');
SELECT tenant_id, order_id, product_id, quantity FROM upsell.order_lines ORDER BY tenant_id, order_key, product_id;

-- the catalog
CREATE TABLE sh.products (shop int, collection text, doc json);
INSERT INTO sh.products VALUES
	(1, NULL, '{"id": 21, "title": "T-Shirt", "product_type": "Shirts", "status": "active", "updated_at": "2024-02-01T00:00:00Z",
			 "variants": [{"id": 11, "title": "S", "price": "20.00", "sku": "TS-S", "inventory_quantity": 4,
						   "inventory_management": "shopify", "inventory_policy": "deny"},
						  {"id": 12, "title": "M", "price": "22.00", "sku": "TS-M", "inventory_quantity": 0,
						   "inventory_management": "shopify", "inventory_policy": "continue"}]}'),
	-- an earlier delivery of the same product: replaced
	(1, NULL, '{"id": 21, "title": "T-Shirt (old)", "product_type": "Shirts", "updated_at": "2024-01-01T00:00:00Z",
			 "variants": [{"id": 11, "title": "S", "price": "1.00"}]}'),
	-- GraphQL ids, sold out, in a collection
	(1, 'Summer', '{"id": "gid://shopify/Product/23", "title": "Hat", "product_type": "", "status": "ACTIVE",
				   "variants": [{"id": "gid://shopify/ProductVariant/13", "title": "Default Title", "price": "15.00",
								 "sku": "HAT", "inventory_quantity": 0, "inventory_management": "shopify",
								 "inventory_policy": "deny"}]}'),
	-- not tracked: in stock; a draft: not offered
	(1, NULL, '{"id": 22, "title": "Socks", "product_type": "Socks", "status": "active",
			 "variants": [{"id": 22, "title": "Default Title", "price": "9.50", "inventory_management": null}]}'),
	(1, NULL, '{"id": 24, "title": "Belt", "product_type": "Belts", "status": "draft",
			 "variants": [{"id": 14, "title": "Default Title", "price": "5.00", "inventory_quantity": 10}]}'),
	(1, NULL, '{"id": 25, "title": "Empty", "variants": []}'),
	(1, NULL, '{"id": 26, "title": "Odd", "variants": [{"title": "no id", "price": "1.00"}, {"id": 16, "price": "n/a"}]}'),
	(2, NULL, '{"id": 21, "title": "Other shop", "variants": [{"id": 11, "price": "1.00"}]}');
SELECT upsell.register_shopify_products('sh.products', 'collection');
-- the level follows the orders' unless given; a mismatch warns
SELECT upsell.register_shopify_products('sh.products', 'doc', tenant_column => 'shop', collection_column => 'collection');
SELECT * FROM upsell.catalog ORDER BY tenant_id, product_id;
-- a storefront object (a cart.js line carries both ids) means its product
-- at product level
SELECT j.product_id AS product_level FROM upsell._json_products(1, '[{"id": 11, "variant_id": 11, "product_id": 21, "quantity": 1}]') j;
SELECT upsell.register_shopify_products('sh.products', 'doc', tenant_column => 'shop', collection_column => 'collection',
	product_level => 'variant');
SELECT upsell.register_shopify_orders('sh.webhooks', 'body', tenant_column => 'shop', product_level => 'variant');
SELECT o.product_id AS orders, p.product_id AS products FROM upsell.order_source o, upsell.product_source p;
SELECT j.product_id AS variant_level FROM upsell._json_products(1, '[{"id": 11, "variant_id": 11, "product_id": 21, "quantity": 1}]') j;
SELECT * FROM upsell.catalog ORDER BY tenant_id, product_id;
SELECT tenant_id, product_id, variant_id, product_ref, variant_ref, product_title, variant_title, sku, status, skipped
FROM upsell.shopify_variants ORDER BY tenant_id, product_id NULLS FIRST, variant_id NULLS FIRST;
SELECT * FROM upsell.shopify_skips(1) WHERE source = 'products' ORDER BY reason;

-- downstream unchanged: refresh, the models, customers as experiment units
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;
-- refresh counted what the documents hold that does not count, per reason
SELECT e.key AS problem, e.value -> 'rows' AS "rows", e.value -> 'first' AS first
FROM upsell.refresh_log l, jsonb_each(l.bad_rows -> '1') e
WHERE l.refresh_id = (SELECT max(refresh_id) FROM upsell.refresh_log) ORDER BY 1;
SELECT tenant_id, product_id, orders, category, variant_group, price, in_stock, title
FROM upsell.product_model ORDER BY tenant_id, product_id;
SELECT tenant_id, order_id, customer_id, items FROM upsell.order_model ORDER BY tenant_id, order_key;
SELECT upsell.unit_customer('gid://shopify/Customer/501') AS graphql, upsell.unit_customer('501') AS rest;
SELECT upsell.unit_customer('Customer/501');
-- incremental refresh: a new order is folded in; a re-delivery of a counted
-- order (orders/updated) changes lines already counted, so its tenant is
-- rebuilt in full, and says why
SET client_min_messages = warning;
INSERT INTO sh.webhooks (shop, body) VALUES
	(1, '{"id": 1012, "created_at": "2024-03-08T10:00:00-05:00",
		  "line_items": [{"id": 18, "variant_id": 11, "quantity": 1, "price": "20.00"},
						 {"id": 19, "variant_id": 22, "quantity": 1, "price": "9.50"}]}');
CALL upsell.refresh(incremental => true);
SELECT tenant_id, mode, reason, new_lines, new_orders FROM upsell.source_state ORDER BY tenant_id;
INSERT INTO sh.webhooks (shop, body) VALUES
	(1, '{"id": 1012, "created_at": "2024-03-08T10:00:00-05:00", "updated_at": "2024-03-08T11:00:00-05:00",
		  "line_items": [{"id": 18, "variant_id": 11, "quantity": 1, "price": "20.00"}]}');
CALL upsell.refresh(incremental => true);
RESET client_min_messages;
SELECT tenant_id, mode, reason, new_lines, new_orders FROM upsell.source_state ORDER BY tenant_id;
SELECT tenant_id, order_id, items FROM upsell.order_model WHERE order_id = '1012';

-- a storefront naming a product means its best-selling variant: the S shirt
SELECT array_agg(j.product_id ORDER BY j.n) AS "rest, graphql, variant_given"
FROM upsell._json_products(1, '[{"product_id": 21}, {"product_id": "gid://shopify/Product/21"}, {"variant_id": 12, "product_id": 21}]') j;

-- implausible amounts are counted skips too (as in a registration by
-- columns), and an implausible catalog price reads as unknown; every skip
-- is a bad source row that refresh counts
INSERT INTO sh.webhooks (shop, body) VALUES
	(1, '{"id": 1011, "created_at": "2024-03-07T10:00:00-05:00",
		  "line_items": [{"id": 15, "variant_id": 11, "quantity": 1e12, "price": "20.00"},
						 {"id": 16, "variant_id": 12, "quantity": 1, "price": "-22.00"},
						 {"id": 17, "variant_id": 22, "quantity": 1, "price": "9.50"}]}');
INSERT INTO sh.products VALUES
	(1, NULL, '{"id": 27, "title": "Scarf", "product_type": "Scarves", "status": "active",
			 "variants": [{"id": 17, "title": "Default Title", "price": 1e13}]}');
SELECT order_id, product_id, quantity, unit_price, skipped FROM upsell.shopify_order_lines
WHERE order_id = '1011' ORDER BY line_number;
SELECT product_id, price, title FROM upsell.catalog WHERE product_id = 17;
SELECT tenant_id, source, id, problem, value FROM upsell.bad_source_rows('{1}')
WHERE problem NOT LIKE 'earlier delivery%' ORDER BY source, id, problem;
SELECT count(*) FROM upsell.bad_source_rows('{2}');

-- drift: a Shopify registration maps its payload and tenant columns (the
-- roles name document fields, not columns); a renamed payload column is
-- named by the check that refresh runs
ALTER TABLE sh.webhooks RENAME COLUMN body TO payload;
SELECT upsell._check_registrations();
ALTER TABLE sh.webhooks RENAME COLUMN payload TO body;
SELECT upsell._check_registrations();

-- back to a flat registration: the JSON views go
CREATE TABLE sh.lines AS SELECT order_key AS order_id, product_id FROM upsell.order_lines;
SELECT upsell.register_orders('sh.lines', 'order_id', 'product_id');
SELECT to_regclass('upsell.shopify_order_lines') AS json_view, count(*) FROM upsell.order_lines;
SELECT upsell.shopify_skips();

DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA sh CASCADE;
