-- Converts the electronics shop loaded by load_electronics.sql (shop.products,
-- shop.order_lines) into the documents a Shopify app keeps: one product
-- document per product (shop.product_payloads) and one order document per
-- webhook delivery (shop.order_webhooks), in the shape of Shopify's Order and
-- Product resources.  Run with psql after load_electronics.sql.
--
-- The documents count exactly what the flat tables count, through every
-- case a shop's payloads bring:
--   * each variant group of shop.products is one Shopify product, each
--     product one of its variants (one-variant products: "Default Title");
--   * ids as numbers (REST), and as gid://shopify/... strings (GraphQL) in
--     the headphones' product documents and in every 7th order;
--   * every 50th order delivered twice: orders/create with an extra line
--     that was then removed, and orders/updated an hour later with the
--     final lines; every 97th order delivered twice, identically;
--   * every 40th order has an extra AAA batteries line, refunded in full,
--     and every line of quantity 2 or more in every 30th order is one more,
--     with a refund of one;
--   * orders the flat tables do not have: a cancelled order, a test order
--     and malformed documents (no id, line_items not an array, no
--     created_at, a quantity "two"), and one custom line item without a
--     product (gift wrapping) in a real order -- each a counted skip.
-- Ids keep the flat ids' order (variant 40000000000 + product id, order
-- 5000000000 + order id, ...), so ties broken by id break the same way.

\set ON_ERROR_STOP on
DROP TABLE IF EXISTS shop.product_payloads, shop.order_webhooks;

-- the Shopify product (variant group) of each flat product
CREATE TEMP TABLE shopify_variant AS
SELECT p.product_id, 40000000000 + p.product_id AS variant_id,
	   7000000000 + dense_rank() OVER (ORDER BY p.variant_group) AS parent_id,
	   p.variant_group, p.title, p.price, p.category,
	   count(*) OVER (PARTITION BY p.variant_group) AS siblings,
	   p.category = 'headphones' AS graphql
FROM shop.products p;

CREATE TABLE shop.product_payloads (
	received_at	timestamptz NOT NULL,
	payload		jsonb NOT NULL
);
INSERT INTO shop.product_payloads (received_at, payload)
SELECT '2019-01-01 00:00:00+00',
	   jsonb_build_object(
		   'id', CASE WHEN bool_and(v.graphql) THEN to_jsonb('gid://shopify/Product/' || v.parent_id) ELSE to_jsonb(v.parent_id) END,
		   'title', CASE WHEN max(v.siblings) = 1 THEN min(v.title) ELSE initcap(v.variant_group) END,
		   'product_type', min(v.category),
		   'status', 'active',
		   'vendor', 'Electronics Outlet',
		   'handle', lower(regexp_replace(v.variant_group, '[^a-zA-Z0-9]+', '-', 'g')),
		   'created_at', '2018-12-01T09:00:00-05:00',
		   'updated_at', '2018-12-01T09:00:00-05:00',
		   'variants', jsonb_agg(jsonb_build_object(
			   'id', CASE WHEN v.graphql THEN to_jsonb('gid://shopify/ProductVariant/' || v.variant_id) ELSE to_jsonb(v.variant_id) END,
			   'product_id', v.parent_id,
			   'title', CASE WHEN v.siblings = 1 THEN 'Default Title' ELSE v.title END,
			   'price', to_char(v.price, 'FM999999990.00'),
			   'sku', upper(regexp_replace(v.title, '[^a-zA-Z0-9]+', '-', 'g')),
			   'inventory_quantity', 250,
			   'inventory_management', 'shopify',
			   'inventory_policy', 'deny') ORDER BY v.variant_id))
FROM shopify_variant v
GROUP BY v.variant_group, v.parent_id;

-- a draft product, not offered, and an older delivery of the phones that a
-- later one replaced (its price is not the one counted)
INSERT INTO shop.product_payloads (received_at, payload)
VALUES ('2019-01-01 00:00:00+00',
		'{"id": 7999999999, "title": "Prototype Drone", "product_type": "drones", "status": "draft",
		  "updated_at": "2018-12-01T09:00:00-05:00",
		  "variants": [{"id": 49999999999, "product_id": 7999999999, "title": "Default Title", "price": "499.00",
						"sku": "DRONE", "inventory_quantity": 3, "inventory_management": "shopify", "inventory_policy": "deny"}]}');
INSERT INTO shop.product_payloads (received_at, payload)
SELECT '2018-11-01 00:00:00+00',
	   jsonb_set(jsonb_set(payload, '{updated_at}', '"2018-11-01T09:00:00-05:00"'), '{variants,0,price}', '"1.00"')
FROM shop.product_payloads
WHERE payload->>'product_type' = 'phones';

-- one document per order
CREATE TEMP TABLE shopify_order AS
SELECT l.order_id, 5000000000 + l.order_id AS shop_order_id,
	   6000000000 + dense_rank() OVER (ORDER BY min(l.customer)) AS customer_id,
	   min(l.ordered_at) AS ordered_at,
	   l.order_id % 7 = 0 AS graphql,
	   jsonb_agg(jsonb_build_object('line_id', 9000000000 + l.line_id, 'variant_id', v.variant_id,
									'parent_id', v.parent_id, 'title', v.title, 'sku',
									upper(regexp_replace(v.title, '[^a-zA-Z0-9]+', '-', 'g')),
									'quantity', l.quantity, 'price', to_char(l.unit_price, 'FM999999990.00'))
			   ORDER BY l.line_id) AS lines
FROM shop.order_lines l
JOIN shopify_variant v USING (product_id)
GROUP BY l.order_id;

-- An id as REST (a number) or GraphQL (gid://shopify/Type/N) writes it.
CREATE FUNCTION pg_temp.ref(graphql boolean, type text, id bigint)
RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT CASE WHEN graphql THEN to_jsonb('gid://shopify/' || type || '/' || id) ELSE to_jsonb(id) END $$;

-- An order document.  extra: line items added (refunded ones, a removed
-- one); bump: lines of quantity >= 2 one more, refunded by one.
CREATE FUNCTION pg_temp.order_doc(o shopify_order, updated_at timestamp, extra jsonb, bump boolean)
RETURNS jsonb
LANGUAGE sql
AS $$
	SELECT jsonb_build_object(
		'id', pg_temp.ref(o.graphql, 'Order', o.shop_order_id),
		'admin_graphql_api_id', 'gid://shopify/Order/' || o.shop_order_id,
		'name', '#' || o.order_id,
		'order_number', o.order_id,
		'created_at', to_char(o.ordered_at, 'YYYY-MM-DD"T"HH24:MI:SS') || '-05:00',
		'updated_at', to_char(updated_at, 'YYYY-MM-DD"T"HH24:MI:SS') || '-05:00',
		'cancelled_at', NULL,
		'test', false,
		'currency', 'USD',
		'financial_status', 'paid',
		'customer', jsonb_build_object('id', pg_temp.ref(o.graphql, 'Customer', o.customer_id)),
		'line_items', (SELECT jsonb_agg(jsonb_build_object(
							  'id', pg_temp.ref(o.graphql, 'LineItem', (li->>'line_id')::bigint),
							  'product_id', pg_temp.ref(o.graphql, 'Product', (li->>'parent_id')::bigint),
							  'variant_id', pg_temp.ref(o.graphql, 'ProductVariant', (li->>'variant_id')::bigint),
							  'title', li->>'title', 'sku', li->>'sku',
							  'quantity', (li->>'quantity')::int + CASE WHEN bump AND (li->>'quantity')::int >= 2 THEN 1 ELSE 0 END,
							  'price', li->>'price') ORDER BY ord)
					   FROM jsonb_array_elements(o.lines || coalesce(extra, '[]')) WITH ORDINALITY x(li, ord)),
		'refunds', (SELECT coalesce(jsonb_agg(jsonb_build_object(
							  'id', 8000000000 + (li->>'line_id')::bigint,
							  'created_at', to_char(o.ordered_at + interval '3 days', 'YYYY-MM-DD"T"HH24:MI:SS') || '-05:00',
							  'refund_line_items', jsonb_build_array(jsonb_build_object(
								  'id', 8500000000 + (li->>'line_id')::bigint,
								  'line_item_id', pg_temp.ref(o.graphql, 'LineItem', (li->>'line_id')::bigint),
								  'quantity', CASE WHEN (li->>'refunded')::boolean THEN (li->>'quantity')::int ELSE 1 END)))), '[]')
					FROM jsonb_array_elements(o.lines || coalesce(extra, '[]')) x(li)
					WHERE (li->>'refunded')::boolean OR (bump AND (li->>'quantity')::int >= 2)))
$$;

CREATE TABLE shop.order_webhooks (
	delivery_id	bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	topic		text NOT NULL,
	received_at	timestamptz NOT NULL,
	payload		jsonb NOT NULL
);

-- an extra line that was refunded in full, and one removed before the update
CREATE TEMP TABLE extra_line AS
SELECT jsonb_build_object('line_id', 1000000 + v.product_id, 'variant_id', v.variant_id, 'parent_id', v.parent_id,
						  'title', v.title, 'sku', upper(regexp_replace(v.title, '[^a-zA-Z0-9]+', '-', 'g')),
						  'quantity', 1, 'price', to_char(v.price, 'FM999999990.00'), 'refunded', true) AS refunded,
	   jsonb_build_object('line_id', 2000000 + v.product_id, 'variant_id', v.variant_id, 'parent_id', v.parent_id,
						  'title', v.title, 'sku', upper(regexp_replace(v.title, '[^a-zA-Z0-9]+', '-', 'g')),
						  'quantity', 3, 'price', to_char(v.price, 'FM999999990.00')) AS removed
FROM shopify_variant v
WHERE v.title = 'AAA Batteries (4-pack)';

INSERT INTO shop.order_webhooks (topic, received_at, payload)
SELECT d.topic, d.received_at, d.payload
FROM shopify_order o, extra_line x,
	 LATERAL (
		 -- orders/create of the twice-delivered orders, with a line removed later
		 SELECT 'orders/create' AS topic, o.ordered_at::timestamptz AS received_at,
				pg_temp.order_doc(o, o.ordered_at, jsonb_build_array(x.removed), false) AS payload
		 WHERE o.order_id % 50 = 0
		 UNION ALL
		 SELECT CASE WHEN o.order_id % 50 = 0 THEN 'orders/updated' ELSE 'orders/create' END,
				o.ordered_at + CASE WHEN o.order_id % 50 = 0 THEN interval '1 hour' ELSE '0' END,
				pg_temp.order_doc(o, o.ordered_at + CASE WHEN o.order_id % 50 = 0 THEN interval '1 hour' ELSE '0' END,
								  CASE WHEN o.order_id % 40 = 0 THEN jsonb_build_array(x.refunded) END,
								  o.order_id % 30 = 0)
		 FROM generate_series(1, CASE WHEN o.order_id % 97 = 0 THEN 2 ELSE 1 END)
	 ) d
ORDER BY o.order_id, d.received_at;

-- a custom line item (no product) in the last order of the shop
UPDATE shop.order_webhooks w
SET payload = jsonb_set(w.payload, '{line_items}', w.payload->'line_items' ||
			  '[{"id": 9999999999, "product_id": null, "variant_id": null, "title": "Gift wrapping", "quantity": 1, "price": "4.99"}]')
WHERE w.delivery_id = (SELECT max(delivery_id) FROM shop.order_webhooks);

-- orders that do not count: cancelled, test, malformed
INSERT INTO shop.order_webhooks (topic, received_at, payload)
SELECT t.topic, '2019-12-31 12:00:00+00', t.payload::jsonb
FROM (VALUES
	('orders/cancelled', '{"id": 4999999991, "created_at": "2019-12-30T10:00:00-05:00", "updated_at": "2019-12-31T07:00:00-05:00",
	   "cancelled_at": "2019-12-31T07:00:00-05:00", "cancel_reason": "customer", "test": false, "currency": "USD",
	   "customer": {"id": 6999999991}, "line_items": [{"id": 1, "product_id": 7000000001, "variant_id": 40000000019, "quantity": 5, "price": "150.00"},
													  {"id": 2, "product_id": 7000000002, "variant_id": 40000000001, "quantity": 5, "price": "109.99"}], "refunds": []}'),
	('orders/create', '{"id": "gid://shopify/Order/4999999992", "created_at": "2019-12-30T11:00:00-05:00", "cancelled_at": null, "test": true,
	   "currency": "USD", "customer": {"id": 6999999992},
	   "line_items": [{"id": 3, "product_id": 7000000001, "variant_id": 40000000019, "quantity": 9, "price": "150.00"},
					  {"id": 4, "product_id": 7000000002, "variant_id": 40000000001, "quantity": 9, "price": "109.99"}]}'),
	('orders/create', '{"created_at": "2019-12-30T12:00:00-05:00", "test": false,
	   "line_items": [{"id": 5, "variant_id": 40000000019, "quantity": 1, "price": "150.00"}]}'),
	('orders/create', '{"id": 4999999994, "created_at": "2019-12-30T13:00:00-05:00", "test": false,
	   "line_items": {"id": 6, "variant_id": 40000000019, "quantity": 1, "price": "150.00"}}'),
	('orders/create', '{"id": 4999999995, "created_at": "yesterday", "test": false,
	   "line_items": [{"id": 7, "variant_id": 40000000019, "quantity": 1, "price": "150.00"}]}'),
	('orders/create', '{"id": 4999999996, "created_at": "2019-12-30T14:00:00-05:00", "test": false,
	   "line_items": [{"id": 8, "variant_id": 40000000019, "quantity": "two", "price": "150.00"}]}')
) AS t(topic, payload);

ANALYZE shop.product_payloads, shop.order_webhooks;
