-- Ends a sql/70_* test.  DROP SCHEMA ... CASCADE on the registered tables
-- would cascade through the views upsell.order_lines / catalog / carts to
-- the extension itself, so the views go back to their placeholders first.
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DELETE FROM upsell.cart_source;
DELETE FROM upsell.consumables;
DELETE FROM upsell.exclusions;
CREATE OR REPLACE VIEW upsell.order_lines AS
SELECT NULL::bigint AS tenant_id, NULL::bigint AS order_key, NULL::text AS order_id,
	   NULL::bigint AS product_id, NULL::bigint AS customer_id,
	   NULL::timestamptz AS ordered_at, NULL::numeric AS quantity, NULL::numeric AS unit_price
WHERE false;
CREATE OR REPLACE VIEW upsell.catalog AS
SELECT NULL::bigint AS tenant_id, NULL::bigint AS product_id, NULL::numeric AS price,
	   NULL::text AS category, NULL::text AS variant_group, NULL::boolean AS in_stock,
	   NULL::text AS title, NULL::numeric AS unit_size, NULL::text AS unit_name
WHERE false;
CREATE OR REPLACE VIEW upsell.carts AS
SELECT NULL::bigint AS tenant_id, NULL::bigint AS cart_id, NULL::bigint AS customer_id,
	   NULL::bigint AS product_id, NULL::numeric AS quantity,
	   NULL::timestamptz AS added_at, NULL::timestamptz AS checked_out_at
WHERE false;
