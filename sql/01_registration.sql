-- Registration: which relation and columns mean what; errors for bad input.
\set SHOW_CONTEXT never
CREATE SCHEMA reg;
CREATE TABLE reg.lines (
	order_no	text,
	sku_id		integer,
	buyer		bigint,
	at			date,
	qty			smallint,
	price		numeric(8, 2),
	shop		integer,
	note		text,
	weight		real
);
INSERT INTO reg.lines VALUES
	('A-1', 1, 10, '2024-01-02', 1, 9.99, 1, 'x', 1),
	('A-1', 2, 10, '2024-01-02', 2, 4.50, 1, 'y', 1),
	('B-7', 1, 11, '2024-01-03', 1, 9.99, 2, NULL, 1);
CREATE TABLE reg.products (id bigint, price numeric, cat text, grp text, stock int, name text, shop int);
INSERT INTO reg.products VALUES (1, 9.99, 'c1', 'g', 5, 'one', 1), (2, 4.50, 'c1', 'g', 0, 'two', 1),
	(3, 1.00, 'c2', NULL, NULL, 'three', 1);

-- nothing registered yet
SELECT * FROM upsell.recommend_for_cart('{1}');
CALL upsell.refresh();

-- wrong names and types: clear errors with a hint, nothing recorded
SELECT upsell.register_orders('reg.lines', 'order_no', 'sku');
SELECT upsell.register_orders('reg.lines', 'order_no', 'note');
SELECT upsell.register_orders('reg.lines', 'order_no', 'sku_id', ordered_at => 'price');
SELECT upsell.register_orders('reg.lines', 'order_no', 'sku_id', quantity => 'note');
SELECT upsell.register_orders('reg.lines', 'order_no', 'sku_id', tenant_id => 'note');
SELECT upsell.register_orders('reg.lines', NULL, 'sku_id');
SELECT upsell.register_orders('reg.nosuch', 'order_no', 'sku_id');
SELECT count(*) FROM upsell.order_source;

-- a good registration; text order ids become 64-bit keys
SELECT upsell.register_orders('reg.lines', 'order_no', 'sku_id', customer_id => 'buyer',
	ordered_at => 'at', quantity => 'qty', unit_price => 'price');
SELECT tenant_id, order_key = upsell.order_key(order_id) AS key_ok, order_id, product_id,
	   customer_id, ordered_at, quantity, unit_price
FROM upsell.order_lines ORDER BY order_id, product_id;
SELECT pg_typeof(product_id), pg_typeof(quantity), pg_typeof(ordered_at)
FROM upsell.order_lines LIMIT 1;

-- re-registration replaces the previous one (now per tenant)
SELECT upsell.register_orders('reg.lines', 'order_no', 'sku_id', tenant_id => 'shop');
SELECT relation, order_id, product_id, customer_id, tenant_id FROM upsell.order_source;
SELECT tenant_id, order_id, product_id, customer_id, quantity FROM upsell.order_lines ORDER BY 1, 2, 3;

-- the catalog: numeric stock means in stock when > 0, missing stock means in stock
SELECT upsell.register_products('reg.products', 'id', price => 'price', category => 'cat',
	variant_group => 'grp', in_stock => 'stock', title => 'name', tenant_id => 'shop');
SELECT * FROM upsell.catalog ORDER BY product_id;
SELECT upsell.register_products('reg.products', 'id', in_stock => 'name');
SELECT upsell.register_products('reg.products', 'id', price => 'cat');

-- tenant arguments follow the registration
SELECT upsell._tenant(2);
SELECT upsell._tenant(NULL);
SELECT upsell.register_orders('reg.lines', 'order_no', 'sku_id');
SELECT upsell._tenant(NULL), upsell._tenant(0);
SELECT upsell._tenant(5);

-- a product listed twice (a catalog view over a join): every model that
-- reads the catalog describes it by the same row, in stock first, then the
-- highest price
CREATE TABLE reg.listing (id bigint, price numeric, cat text, grp text, stock int, size numeric);
INSERT INTO reg.listing VALUES (1, 10, 'c', 'g', 0, 2), (1, 8, 'c', 'g', 3, NULL), (1, 12, 'c', 'g', 0, 5),
	(2, 12, 'c', 'g', 1, 1), (2, 14, 'c', 'g', 1, 3), (2, NULL, 'c', 'g', 1, 4);
SELECT upsell.register_products('reg.listing', 'id', price => 'price', category => 'cat',
	variant_group => 'grp', in_stock => 'stock', unit_size => 'size');
SET client_min_messages = warning;
CALL upsell.refresh();
RESET client_min_messages;
SELECT p.product_id, p.price, p.in_stock, u.unit_size
FROM upsell.product_model p LEFT JOIN upsell.unit_model u USING (tenant_id, product_id)
ORDER BY p.product_id;

-- registrations are configuration that pg_dump keeps
SELECT c.relname
FROM pg_extension e, unnest(e.extconfig) AS x(oid) JOIN pg_class c ON c.oid = x.oid
WHERE e.extname = 'upsell' AND c.relname LIKE '%\_source' ORDER BY 1;

-- user-supplied names never reach SQL unquoted
CREATE TABLE reg."odd; DROP TABLE reg.lines; --" ("order id" int, "Product""Id" int);
INSERT INTO reg."odd; DROP TABLE reg.lines; --" VALUES (1, 5), (1, 6);
SELECT upsell.register_orders('reg."odd; DROP TABLE reg.lines; --"', 'order id', 'Product"Id');
SELECT order_key, product_id FROM upsell.order_lines ORDER BY 2;
SELECT count(*) FROM reg.lines;

-- a registered table dropped with CASCADE takes only the view with it
DROP TABLE reg."odd; DROP TABLE reg.lines; --" CASCADE;
SELECT extname FROM pg_extension WHERE extname = 'upsell';
CALL upsell.refresh();

DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA reg CASCADE;

-- columns of a domain type are read as the type it constrains (domains of
-- domains too): a product id that must be positive, an order number that
-- must look like one, a weighed quantity, a non-negative price
CREATE SCHEMA dom;
CREATE DOMAIN dom.product_ref AS integer CHECK (VALUE > 0);
CREATE DOMAIN dom.item_ref AS dom.product_ref;
CREATE DOMAIN dom.order_no AS text CHECK (VALUE LIKE 'ORD-%');
CREATE DOMAIN dom.amount AS numeric(10, 3) CHECK (VALUE >= 0);
CREATE DOMAIN dom.stamp AS timestamptz;
CREATE TABLE dom.lines (order_no dom.order_no, item dom.item_ref, at dom.stamp, qty dom.amount, price dom.amount);
INSERT INTO dom.lines VALUES ('ORD-1', 1, '2024-01-01 10:00+00', 1.5, 2), ('ORD-1', 2, '2024-01-01 10:00+00', 1, 3),
	('ORD-2', 1, '2024-01-02 10:00+00', 0.25, 2);
CREATE TABLE dom.items (id dom.product_ref, price dom.amount, stock dom.amount);
INSERT INTO dom.items VALUES (1, 2, 5), (2, 3, 0);
SELECT upsell.register_orders('dom.lines', 'order_no', 'item', ordered_at => 'at', quantity => 'qty', unit_price => 'price');
SELECT upsell.register_products('dom.items', 'id', price => 'price', in_stock => 'stock');
SELECT order_key = upsell.order_key('ORD-1') AS keyed, product_id, ordered_at, quantity, unit_price
FROM upsell.order_lines ORDER BY ordered_at, product_id;
SELECT product_id, price, in_stock FROM upsell.catalog ORDER BY product_id;
DELETE FROM upsell.order_source;
DELETE FROM upsell.product_source;
DROP SCHEMA dom CASCADE;

-- a date or timestamp column is read as a local time of the registration's
-- zone: upsell._local_time is timezone(zone, ts), through the changes of
-- daylight saving time (the hour that does not exist, the one that comes
-- twice), infinity as it is, and an unknown zone an error
SELECT count(*) AS times, count(*) FILTER (
	WHERE upsell._local_time(x, 'Europe/Berlin') IS DISTINCT FROM timezone('Europe/Berlin', x)
	   OR upsell._local_time(x, 'America/Los_Angeles') IS DISTINCT FROM timezone('America/Los_Angeles', x)
	   OR upsell._local_time(x, 'UTC') IS DISTINCT FROM timezone('UTC', x)) AS differing
FROM generate_series(timestamp '2024-03-09', '2024-11-04', '7 minutes') x;
SELECT upsell._local_time('2024-03-31 02:30', 'Europe/Berlin') = timezone('Europe/Berlin', '2024-03-31 02:30'::timestamp) AS gap_hour,
	   upsell._local_time('infinity', 'Europe/Berlin') = 'infinity'::timestamptz AS infinite;
SELECT upsell._local_time('2024-01-01', 'Nowhere/Land');
